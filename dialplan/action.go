package dialplan

import (
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// actionSpec is how an action may be written: a bare word, kind: SCALAR
// (standing for the short key), or kind: {keys...}.
type actionSpec struct {
	bare  bool
	short string
	keys  []string
}

var actionSpecs = map[string]actionSpec{
	"answer": {bare: true, keys: []string{"on_failure"}},
	"play":   {short: "file", keys: []string{"file", "on_failure"}},
	"gather": {keys: []string{"prompt", "name", "max_digits", "timeout", "inter_digit_timeout", "terminator",
		"retries", "branches", "no_input", "no_match", "on_failure"}},
	"agent":    {bare: true, short: "name", keys: []string{"name", "params", "on_failure"}},
	"transfer": {short: "target", keys: []string{"mode", "target", "caller_id", "headers", "on_failure"}},
	"hangup":   {bare: true, keys: []string{"cause"}},
	"reject":   {short: "code", keys: []string{"code", "reason", "on_failure"}},
	"goto":     {short: "target"},
}

const actionNames = "answer, play, gather, agent, transfer, hangup, reject, goto"

// maxActionDepth bounds how deeply action lists nest (branches, on_failure).
const maxActionDepth = 8

func (pl *planLoader) actionList(n *yaml.Node, what string) []*action {
	items, ok := pl.seq(n, what, false)
	if !ok {
		return nil
	}
	if len(items) == 0 {
		pl.errf(n, "%s: the list is empty", what)
		return nil
	}
	if pl.depth >= maxActionDepth {
		pl.errf(n, "%s: actions nested more than %d deep: use a menu and goto", what, maxActionDepth)
		return nil
	}
	pl.depth++
	defer func() { pl.depth-- }()
	var out []*action
	for _, it := range items {
		if a := pl.action(it); a != nil {
			out = append(out, a)
		}
	}
	return out
}

func (pl *planLoader) action(n *yaml.Node) *action {
	if !pl.usable(n) {
		return nil
	}
	var key, val *yaml.Node
	switch {
	case n.Kind == yaml.ScalarNode:
		key = n
	case n.Kind == yaml.MappingNode && len(n.Content) == 2:
		key, val = n.Content[0], n.Content[1]
		if val.Kind == yaml.ScalarNode && val.ShortTag() == "!!null" {
			val = nil
		}
	case n.Kind == yaml.MappingNode && len(n.Content) > 2:
		var keys []string
		for i := 0; i < len(n.Content); i += 2 {
			keys = append(keys, n.Content[i].Value)
		}
		if slices.Contains(keys, "on_failure") {
			pl.errf(n, "action: on_failure goes inside the action's options, e.g. play: {file: x.wav, on_failure: [...]}")
		} else {
			pl.errf(n, "action: one action per list item (got keys %s); write each as its own - item", strings.Join(keys, ", "))
		}
		return nil
	default:
		pl.errf(n, "action: expected one of %s, got %s", actionNames, kindName(n))
		return nil
	}
	spec, ok := actionSpecs[key.Value]
	if !ok {
		pl.errf(key, "unknown action %q (expected one of %s)", key.Value, actionNames)
		return nil
	}
	a := &action{kind: key.Value, line: key.Line, col: key.Column}
	var opts map[string]field
	switch {
	case val == nil && spec.keys == nil:
		pl.errf(key, "%s needs a rule or menu name", a.kind)
		return nil
	case val == nil && !spec.bare:
		pl.errf(key, "%s needs a value (keys: %s)", a.kind, strings.Join(spec.keys, ", "))
		return nil
	case val == nil:
		opts = map[string]field{}
	case val.Kind == yaml.ScalarNode && spec.short != "":
		opts = map[string]field{spec.short: {key, val}}
	case spec.keys == nil:
		pl.errf(val, "%s: expected a rule or menu name, got %s", a.kind, kindName(val))
		return nil
	default:
		if opts = pl.fields(val, a.kind, spec.keys...); opts == nil {
			return nil
		}
	}
	if f, ok := opts["on_failure"]; ok {
		a.onFailure = pl.actionList(f.val, "on_failure")
	}
	at := val
	if at == nil {
		at = key
	}
	switch a.kind {
	case "play":
		a.prompt = pl.prompt(pl.required(opts, "file", at, a.kind), "play")
	case "gather":
		a.gather = pl.gather(opts)
	case "agent":
		pl.agentAction(a, opts)
	case "transfer":
		a.transfer = pl.transferSpec(opts, at)
	case "hangup":
		a.cause = CauseNormal
		if f, ok := opts["cause"]; ok {
			if s, ok := pl.str(f.val, "cause"); ok && s != CauseNormal && s != CauseError {
				pl.errf(f.val, "hangup: unknown cause %q (expected normal or error)", s)
			} else {
				a.cause = s
			}
		}
	case "reject":
		a.code, _ = pl.integer(pl.required(opts, "code", at, a.kind), "reject: SIP code", 400, 699)
		if f, ok := opts["reason"]; ok {
			a.reason, _ = pl.headerText(f.val, "reject: reason")
		}
	case "goto":
		a.target, _ = pl.str(pl.required(opts, "target", at, a.kind), "goto")
	}
	return a
}

// required returns the value of key, reporting it missing (then nil).
func (pl *planLoader) required(opts map[string]field, key string, at *yaml.Node, kind string) *yaml.Node {
	if f, ok := opts[key]; ok {
		return f.val
	}
	pl.errf(at, "%s: %s is required", kind, key)
	return nil
}

// headerText reads a string that goes into a SIP header: no line breaks.
func (pl *planLoader) headerText(n *yaml.Node, what string) (string, bool) {
	s, ok := pl.str(n, what)
	if ok && strings.ContainsAny(s, "\r\n\x00") {
		pl.errf(n, "%s: must not contain line breaks", what)
		return "", false
	}
	return s, ok
}

func (pl *planLoader) agentAction(a *action, opts map[string]field) {
	if f, ok := opts["name"]; ok { // no name: the gateway's default agent
		name, ok := pl.str(f.val, "agent")
		if ok && pl.agents != nil && !pl.agents[name] {
			pl.errf(f.val, "unknown agent %q (known: %s)", name, known(pl.agents))
		}
		a.agent = name
	}
	f, ok := opts["params"]
	if !ok {
		return
	}
	a.params = map[string]template{}
	for k, pf := range pl.fields(f.val, "params") {
		if !nameRE.MatchString(k) {
			pl.errf(pf.key, "params: %q is not a parameter name (letters, digits, '-', '_', '.')", k)
			continue
		}
		if t, ok := pl.template(pf.val, "params: "+k); ok {
			a.params[k] = t
		}
	}
}

// reservedHeaders are the headers a transfer may not set itself.
var reservedHeaders = []string{"via", "from", "to", "call-id", "cseq", "contact", "content-length",
	"content-type", "max-forwards", "route", "record-route", "refer-to", "event"}

func (pl *planLoader) transferSpec(opts map[string]field, at *yaml.Node) *transferSpec {
	t := &transferSpec{mode: "cold"}
	if f, ok := opts["mode"]; ok {
		if s, ok := pl.str(f.val, "transfer: mode"); ok && s != "cold" && s != "warm" {
			pl.errf(f.val, "transfer: unknown mode %q (expected cold or warm)", s)
		} else if ok {
			t.mode = s
		}
	}
	n := pl.required(opts, "target", at, "transfer")
	if _, ok := pl.headerText(n, "transfer: target"); ok {
		t.target, _ = pl.template(n, "transfer: target")
	}
	if f, ok := opts["caller_id"]; ok {
		if _, ok := pl.headerText(f.val, "transfer: caller_id"); ok {
			t.callerID, _ = pl.template(f.val, "transfer: caller_id")
		}
	}
	if f, ok := opts["headers"]; ok {
		t.headers = map[string]template{}
		for name, hf := range pl.fields(f.val, "transfer: headers") {
			switch {
			case !headerNameRE.MatchString(name):
				pl.errf(hf.key, "transfer: headers: %q is not a SIP header name", name)
			case slices.Contains(reservedHeaders, strings.ToLower(name)):
				pl.errf(hf.key, "transfer: headers: %s is set by the gateway and cannot be given here", name)
			default:
				if _, ok := pl.headerText(hf.val, "transfer: header "+name); ok {
					t.headers[name], _ = pl.template(hf.val, "transfer: header "+name)
				}
			}
		}
	}
	return t
}
