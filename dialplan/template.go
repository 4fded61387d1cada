package dialplan

import (
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// template is a string with {{variable}} references, parsed at load.
type template struct {
	raw   string
	parts []tpart
}

type tpart struct {
	lit string
	v   string // a variable name; "" for literal text
}

// Template variables; digits.NAME and header.NAME take a name.
var templateVarRE = regexp.MustCompile("^(caller|called|trunk|call_id|digits|digits\\.[A-Za-z0-9_-]{1,64}|header\\.[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64})$")

// parseTemplate splits s into text and variables; an unknown variable or an
// unclosed {{ is an error.
func parseTemplate(s string) (template, error) {
	t := template{raw: s}
	rest := s
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			break
		}
		if i > 0 {
			t.parts = append(t.parts, tpart{lit: rest[:i]})
		}
		j := strings.Index(rest[i+2:], "}}")
		if j < 0 {
			return t, fmt.Errorf("unclosed {{ in %q", s)
		}
		name := strings.TrimSpace(rest[i+2 : i+2+j])
		if !templateVarRE.MatchString(name) {
			return t, fmt.Errorf("unknown template variable {{%s}} (known: caller, called, trunk, call_id, digits, digits.NAME, header.NAME)", name)
		}
		t.parts = append(t.parts, tpart{v: name})
		rest = rest[i+2+j+2:]
	}
	if rest != "" {
		t.parts = append(t.parts, tpart{lit: rest})
	}
	return t, nil
}

// expand replaces each variable with lookup's value for it.
func (t template) expand(lookup func(name string) string) string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.v == "" {
			b.WriteString(p.lit)
		} else {
			b.WriteString(lookup(p.v))
		}
	}
	return b.String()
}

// template reads a template value; {{digits.NAME}} is checked against the
// plan's gather names once they are all known.
func (pl *planLoader) template(n *yaml.Node, what string) (template, bool) {
	s, ok := pl.str(n, what)
	if !ok {
		return template{}, false
	}
	t, err := parseTemplate(s)
	if err != nil {
		pl.errf(n, "%s: %v", what, err)
		return t, false
	}
	for _, p := range t.parts {
		if name, ok := strings.CutPrefix(p.v, "digits."); ok {
			pl.digitRefs = append(pl.digitRefs, digitRef{name: name, node: n})
		}
	}
	return t, true
}

// lookup is the value of a template variable during a call.
func (r *runner) lookup(name string) string {
	switch name {
	case "caller":
		return r.vars.Caller
	case "called":
		return r.vars.Called
	case "trunk":
		return r.vars.Trunk
	case "call_id":
		return r.vars.CallID
	case "digits":
		return r.digits
	}
	if g, ok := strings.CutPrefix(name, "digits."); ok {
		return r.named[g]
	}
	if h, ok := strings.CutPrefix(name, "header."); ok && r.vars.Header != nil {
		return r.vars.Header(h)
	}
	return ""
}
