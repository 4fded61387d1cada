package dialplan

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// matcher is a rule's match: every condition given must hold.
type matcher struct {
	to, toPrefix, from, fromPrefix, trunk string
	toRE, fromRE                          *regexp.Regexp
	headers                               []headerMatch
	windows                               []window // any of them
	key                                   string   // canonical form; "" matches every call
}

type headerMatch struct {
	name string
	re   *regexp.Regexp
}

// Route returns the first rule whose match holds for f, else the default
// rule. It never returns nil for a loaded plan.
func (p *Plan) Route(f Facts) *Rule {
	at := f.At
	if at.IsZero() {
		at = p.now()
	}
	for _, r := range p.Rules {
		if !r.Default && r.match.matches(f, at, p.holidays) {
			return r
		}
	}
	return p.Default
}

func (m *matcher) matches(f Facts, at time.Time, holidays map[string]bool) bool {
	switch {
	case m.to != "" && f.To != m.to,
		m.toPrefix != "" && !strings.HasPrefix(f.To, m.toPrefix),
		m.toRE != nil && !m.toRE.MatchString(f.To),
		m.from != "" && f.From != m.from,
		m.fromPrefix != "" && !strings.HasPrefix(f.From, m.fromPrefix),
		m.fromRE != nil && !m.fromRE.MatchString(f.From),
		m.trunk != "" && f.Trunk != m.trunk:
		return false
	}
	for _, h := range m.headers {
		v := ""
		if f.Headers != nil {
			v = f.Headers(h.name)
		}
		if !h.re.MatchString(v) {
			return false
		}
	}
	if len(m.windows) == 0 {
		return true
	}
	for _, w := range m.windows {
		if w.match(at, holidays) {
			return true
		}
	}
	return false
}

var headerNameRE = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")

func (pl *planLoader) match(n *yaml.Node) (m matcher) {
	errsBefore := len(pl.errs)
	defer func() {
		if len(pl.errs) > errsBefore { // a broken match is neither a catch-all nor a duplicate
			m.key = fmt.Sprintf("invalid at %d:%d", n.Line, n.Column)
		}
	}()
	f := pl.fields(n, "match", "to", "to_prefix", "to_regex", "from", "from_prefix", "from_regex", "trunk", "time", "headers")
	var key []string
	for _, k := range []string{"to", "to_prefix", "from", "from_prefix", "trunk"} {
		fl, ok := f[k]
		if !ok {
			continue
		}
		v, ok := pl.str(fl.val, k)
		if !ok {
			continue
		}
		key = append(key, k+"="+v)
		switch k {
		case "to":
			m.to = v
		case "to_prefix":
			m.toPrefix = v
		case "from":
			m.from = v
		case "from_prefix":
			m.fromPrefix = v
		case "trunk":
			m.trunk = v
			if pl.trunks != nil && !pl.trunks[v] {
				pl.errf(fl.val, "unknown trunk %q (known: %s)", v, known(pl.trunks))
			}
		}
	}
	if fl, ok := f["to_regex"]; ok {
		m.toRE = pl.regex(fl.val, "to_regex")
		key = append(key, "to_regex="+fl.val.Value)
	}
	if fl, ok := f["from_regex"]; ok {
		m.fromRE = pl.regex(fl.val, "from_regex")
		key = append(key, "from_regex="+fl.val.Value)
	}
	if fl, ok := f["headers"]; ok {
		m.headers = pl.headerMatches(fl.val)
		for _, h := range m.headers {
			key = append(key, "header "+strings.ToLower(h.name)+"="+h.re.String())
		}
	}
	if fl, ok := f["time"]; ok {
		items := []*yaml.Node{fl.val} // one window, or a list of them
		if fl.val.Kind != yaml.MappingNode {
			items, _ = pl.seq(fl.val, "time", false)
		}
		var wk []string
		for _, it := range items {
			if w, ok := pl.window(it); ok {
				m.windows = append(m.windows, w)
				wk = append(wk, w.key())
			}
		}
		slices.Sort(wk)
		key = append(key, "time="+strings.Join(wk, ";"))
	}
	slices.Sort(key)
	m.key = strings.Join(key, "\n")
	return m
}

func (pl *planLoader) regex(n *yaml.Node, what string) *regexp.Regexp {
	s, ok := pl.str(n, what)
	if !ok {
		return nil
	}
	re, err := regexp.Compile(s)
	if err != nil {
		pl.errf(n, "%s: bad regular expression: %v", what, err)
		return nil
	}
	return re
}

func (pl *planLoader) headerMatches(n *yaml.Node) []headerMatch {
	f := pl.fields(n, "headers")
	var out []headerMatch
	for name, fl := range f {
		if !headerNameRE.MatchString(name) {
			pl.errf(fl.key, "headers: %q is not a SIP header name", name)
			continue
		}
		if re := pl.regex(fl.val, "header "+name); re != nil {
			out = append(out, headerMatch{name: name, re: re})
		}
	}
	slices.SortFunc(out, func(a, b headerMatch) int { return strings.Compare(a.name, b.name) })
	return out
}

func (pl *planLoader) window(n *yaml.Node) (window, bool) {
	w := window{days: allDays, loc: pl.plan.Timezone}
	f := pl.fields(n, "time window", "days", "from", "to", "timezone", "holidays")
	if f == nil {
		return w, false
	}
	ok := true
	if len(f) == 0 {
		pl.errf(n, "empty time window: give days, from and to, or holidays")
		ok = false
	}
	if fl, has := f["days"]; has {
		w.days = 0
		items, _ := pl.seq(fl.val, "days", true)
		for _, it := range items {
			s, good := pl.str(it, "days")
			d, err := parseDays(s)
			if good && err != nil {
				pl.errf(it, "days: %v", err)
			}
			ok = ok && good && err == nil
			w.days |= d
		}
	}
	fromF, hasFrom := f["from"]
	toF, hasTo := f["to"]
	switch {
	case hasFrom && hasTo:
		okFrom := pl.clock(fromF.val, "from", false, &w.from)
		okTo := pl.clock(toF.val, "to", true, &w.to)
		ok = ok && okFrom && okTo
		if ok && w.from == w.to {
			pl.errf(toF.val, "time window: from and to are both %s; leave both out for the whole day", toF.val.Value)
			ok = false
		}
	case hasFrom || hasTo:
		pl.errf(n, "time window: give both from and to (HH:MM), or neither for the whole day")
		ok = false
	}
	if fl, has := f["timezone"]; has {
		w.loc = pl.zone(fl.val)
		ok = ok && w.loc != nil
	} else if w.loc == nil {
		pl.errf(n, "time window has no time zone: set timezone at the top of the file or in the window")
		ok = false
	}
	if fl, has := f["holidays"]; has {
		s, good := pl.str(fl.val, "holidays")
		mode, known := holidayModes[s]
		switch {
		case good && !known:
			pl.errf(fl.val, "holidays: %q is not one of exclude, only, ignore", s)
		case good && mode == holidaysOnly && len(pl.plan.holidays) == 0:
			pl.errf(fl.val, "holidays: only, but the plan lists no holidays: this window never matches")
			known = false
		}
		w.holidays = mode
		ok = ok && good && known
	}
	return w, ok
}

func (pl *planLoader) clock(n *yaml.Node, what string, end bool, into *int) bool {
	s, ok := pl.str(n, what)
	if !ok {
		return false
	}
	v, err := parseClock(s, end)
	if err != nil {
		pl.errf(n, "%s: %v", what, err)
		return false
	}
	*into = v
	return true
}

func known(set map[string]bool) string {
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	slices.Sort(names)
	switch {
	case len(names) == 0:
		return "none"
	case len(names) > 20:
		return strings.Join(names[:20], ", ") + fmt.Sprintf(" and %d more", len(names)-20)
	}
	return strings.Join(names, ", ")
}
