package dialplan

import (
	"cmp"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// validate checks what needs the whole plan: the default rule, rules that
// can never match, goto targets and loops, reject after answer, and
// {{digits.NAME}} references.
func (pl *planLoader) validate() {
	pl.defaults()
	pl.reachability()
	for _, b := range pl.sortedBlocks() {
		pl.resolve(b.actions)
	}
	for _, r := range pl.plan.Rules {
		if r.Name == "" { // reported; still resolve its gotos
			pl.resolve(r.body.actions)
		}
	}
	pl.gotoLoops()
	pl.answerStates()
	for _, ref := range pl.digitRefs {
		if !pl.gathers[ref.name] {
			pl.errf(ref.node, "{{digits.%s}}: no gather is named %q (known: %s)", ref.name, ref.name, known(pl.gathers))
		}
	}
}

func (pl *planLoader) defaults() {
	for _, r := range pl.plan.Rules {
		if !r.Default {
			continue
		}
		if d := pl.plan.Default; d != nil {
			pl.errf(&yaml.Node{Line: r.Line, Column: r.body.col}, "rule %s: a second default rule (the first is %s at line %d)", r.Name, d.Name, d.Line)
			continue
		}
		pl.plan.Default = r
	}
	if pl.plan.Default == nil && pl.rulesKey != nil {
		pl.errf(pl.rulesKey, "rules: no default rule: mark the rule for calls nothing else matches with default: true")
	}
}

// reachability reports rules that can never match: every call they match
// is taken first by an earlier rule (see covers), or by a rule that matches
// every call.
func (pl *planLoader) reachability() {
	var catchAll *Rule
	var earlier []*Rule // valid non-default rules so far
	for _, r := range pl.plan.Rules {
		if r.Default || r.match.broken() {
			continue
		}
		at := &yaml.Node{Line: r.Line, Column: r.body.col}
		var by *Rule
		for _, e := range earlier {
			if covers(&e.match, &r.match) {
				by = e
				break
			}
		}
		switch {
		case by == nil:
		case by.match.key == "":
			pl.errf(at, "rule %s can never match: rule %s (line %d) before it matches every call", r.Name, by.Name, by.Line)
		case by.match.key == r.match.key:
			pl.errf(at, "rule %s can never match: rule %s (line %d) has the same match", r.Name, by.Name, by.Line)
		default:
			pl.errf(at, "rule %s can never match: rule %s (line %d) before it is broader and takes every call it would", r.Name, by.Name, by.Line)
		}
		if r.match.key == "" && catchAll == nil {
			catchAll = r
		}
		earlier = append(earlier, r)
	}
	if d := pl.plan.Default; catchAll != nil && d != nil {
		pl.errf(&yaml.Node{Line: d.Line, Column: d.body.col}, "default rule %s is never used: rule %s (line %d) matches every call", d.Name, catchAll.Name, catchAll.Line)
	}
}

// broken reports a match with errors of its own: it is neither a catch-all
// nor comparable with others.
func (m *matcher) broken() bool { return strings.HasPrefix(m.key, "invalid at ") }

// covers reports whether every call that b matches is surely matched by a:
// each condition of a holds for every call meeting b's conditions. It errs
// towards false: a regular expression, header or time window of a is only
// taken as proven by the identical condition in b (or, for a regex, by b's
// exact number matching it), never by reasoning about what it matches.
func covers(a, b *matcher) bool {
	if !numberCovered(a.to, a.toPrefix, a.toRE, b.to, b.toPrefix, b.toRE) ||
		!numberCovered(a.from, a.fromPrefix, a.fromRE, b.from, b.fromPrefix, b.fromRE) ||
		a.trunk != "" && a.trunk != b.trunk {
		return false
	}
	for _, ah := range a.headers {
		if !slices.ContainsFunc(b.headers, func(bh headerMatch) bool {
			return strings.EqualFold(ah.name, bh.name) && ah.re.String() == bh.re.String()
		}) {
			return false
		}
	}
	if len(a.windows) == 0 {
		return true
	}
	if len(b.windows) == 0 {
		return false // b holds at any time; a only in its windows
	}
	// b holds only inside one of its windows: each must be one of a's.
	for _, bw := range b.windows {
		if !slices.ContainsFunc(a.windows, func(aw window) bool { return aw.key() == bw.key() }) {
			return false
		}
	}
	return true
}

// numberCovered reports whether a's conditions on one number (exact,
// prefix, regex; "" or nil when not set) hold whenever b's do.
func numberCovered(aExact, aPrefix string, aRE *regexp.Regexp, bExact, bPrefix string, bRE *regexp.Regexp) bool {
	if aExact != "" && aExact != bExact {
		return false
	}
	if aPrefix != "" && !(bExact != "" && strings.HasPrefix(bExact, aPrefix) ||
		bPrefix != "" && strings.HasPrefix(bPrefix, aPrefix)) {
		return false
	}
	if aRE != nil && !(bRE != nil && aRE.String() == bRE.String() || bExact != "" && aRE.MatchString(bExact)) {
		return false
	}
	return true
}

// resolve points every goto and named branch at its rule or menu, and
// reports actions that follow one that never returns.
func (pl *planLoader) resolve(list []*action) {
	for i, a := range list {
		if i > 0 && terminal(list[i-1]) {
			pl.errf(&yaml.Node{Line: a.line, Column: a.col}, "%s is never run: it follows %s at line %d", a.kind, list[i-1].kind, list[i-1].line)
		}
		pl.resolve(a.onFailure)
		switch {
		case a.kind == "goto" && a.target != "":
			a.to = pl.lookupBlock(a.target, a.line, a.col, "goto")
		case a.gather != nil:
			for _, b := range a.gather.all() {
				if b.target != "" {
					b.to = pl.lookupBlock(b.target, b.line, b.col, "branch")
				}
				pl.resolve(b.actions)
			}
		}
	}
}

// terminal reports whether the actions after a can never run.
func terminal(a *action) bool {
	return a.kind == "goto" || a.kind == "hangup" || (a.kind == "reject" && a.onFailure == nil)
}

func (pl *planLoader) lookupBlock(name string, line, col int, what string) *block {
	if b, ok := pl.blocks[name]; ok {
		return b
	}
	names := map[string]bool{}
	for n := range pl.blocks {
		names[n] = true
	}
	pl.errf(&yaml.Node{Line: line, Column: col}, "%s: no rule or menu is named %q (known: %s)", what, name, known(names))
	return nil
}

// all lists a gather's branches, the no_input and no_match ones included.
func (g *gatherSpec) all() []*branch {
	var out []*branch
	for _, b := range g.branches {
		out = append(out, b)
	}
	for _, b := range []*branch{g.noInput, g.noMatch} {
		if b != nil {
			out = append(out, b)
		}
	}
	return out
}

// gotoLoops reports cycles of gotos that are taken before any gather: a call
// entering one would jump until MaxGotos without waiting for the caller.
func (pl *planLoader) gotoLoops() {
	next := map[*block]*action{} // the unconditional goto of each block
	blocks := pl.sortedBlocks()
	for _, b := range blocks {
		for _, a := range b.actions {
			if a.kind == "gather" || a.kind == "hangup" || a.kind == "reject" {
				break
			}
			if a.kind == "goto" {
				if a.to != nil {
					next[b] = a
				}
				break
			}
		}
	}
	reported := map[*block]bool{}
	for _, start := range blocks {
		path := []string{start.name}
		seen := map[*block]bool{start: true}
		for b := start; next[b] != nil; {
			b = next[b].to
			path = append(path, b.name)
			if b == start && !reported[start] {
				for _, n := range path {
					reported[pl.blocks[n]] = true
				}
				g := next[start]
				pl.errf(&yaml.Node{Line: g.line, Column: g.col}, "goto loop %s: no gather in between, so the call would jump forever", strings.Join(path, " -> "))
			}
			if seen[b] {
				break
			}
			seen[b] = true
		}
	}
}

// sortedBlocks lists the named rules and menus in file order.
func (pl *planLoader) sortedBlocks() []*block {
	out := make([]*block, 0, len(pl.blocks))
	for _, b := range pl.blocks {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b *block) int { return cmp.Compare(a.line*1000000+a.col, b.line*1000000+b.col) })
	return out
}

// answerStates reports rejects that run once the call is surely answered.
// A rule is entered unanswered; a menu is answered on entry when every goto
// or branch reaching it is.
func (pl *planLoader) answerStates() {
	blocks := pl.sortedBlocks()
	entry := map[*block]bool{}
	for _, r := range pl.plan.Rules {
		entry[r.body] = false
	}
	for changed := true; changed; {
		changed = false
		for _, b := range blocks {
			s, reached := entry[b]
			if !reached {
				continue
			}
			walkAnswered(b.actions, s, func(to *block, s bool) {
				if cur, seen := entry[to]; !seen || (cur && !s) {
					entry[to] = s
					changed = true
				}
			}, nil)
		}
	}
	report := func(a *action) {
		pl.errf(&yaml.Node{Line: a.line, Column: a.col}, "reject after the call is answered: reject only works before answer, play, gather, agent or a warm transfer")
	}
	for _, b := range blocks {
		if s, reached := entry[b]; reached {
			walkAnswered(b.actions, s, func(*block, bool) {}, report)
		}
	}
	for _, r := range pl.plan.Rules {
		if r.Name == "" {
			walkAnswered(r.body.actions, false, func(*block, bool) {}, report)
		}
	}
}

// walkAnswered follows list from answered state s, calling edge for each
// jump and report (when set) for each reject that surely follows an answer.
// It returns the state at the end of the list.
func walkAnswered(list []*action, s bool, edge func(*block, bool), report func(*action)) bool {
	for _, a := range list {
		before := s
		switch a.kind {
		case "answer", "play", "agent":
			s = true
		case "transfer":
			s = s || (a.transfer != nil && a.transfer.mode == "warm")
		case "gather":
			for _, b := range a.gather.all() {
				if b.to != nil {
					edge(b.to, true)
				}
				walkAnswered(b.actions, true, edge, report)
			}
			s = true
		case "reject":
			if s && report != nil {
				report(a)
			}
		case "goto":
			if a.to != nil {
				edge(a.to, s)
			}
		}
		if a.onFailure != nil {
			s = walkAnswered(a.onFailure, before, edge, report) && s
		}
	}
	return s
}
