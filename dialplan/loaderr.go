package dialplan

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// LoadError is one problem in a dialplan file.
type LoadError struct {
	File         string
	Line, Column int // 0 when the problem has no place (an unreadable file)
	Msg          string
}

// Error reads "file:line:col: msg" ("file: msg" without a place).
func (e LoadError) Error() string {
	switch {
	case e.Line <= 0:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	case e.Column <= 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// LoadErrors is every problem found in one file, in file order. Load returns
// it as a *LoadErrors; errors.As works with both LoadErrors and *LoadErrors.
type LoadErrors []LoadError

// Error joins the problems, one per line.
func (es LoadErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// As lets errors.As fill a LoadErrors from a *LoadErrors.
func (es *LoadErrors) As(target any) bool {
	if t, ok := target.(*LoadErrors); ok {
		*t = *es
		return true
	}
	return false
}

// loader collects problems while it walks the YAML tree.
type loader struct {
	file string
	errs LoadErrors
}

func (l *loader) errf(n *yaml.Node, format string, args ...any) {
	e := LoadError{File: l.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	l.errs = append(l.errs, e)
}

func (l *loader) sorted() LoadErrors {
	slices.SortStableFunc(l.errs, func(a, b LoadError) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	return l.errs
}

// field is one key of a mapping.
type field struct {
	key, val *yaml.Node
}

// fields returns a mapping's keys, reporting duplicates, keys not in allowed
// and a node that is not a mapping (then nil). what names the mapping.
func (l *loader) fields(n *yaml.Node, what string, allowed ...string) map[string]field {
	if !l.usable(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		l.errf(n, "%s: expected a mapping with keys %s, got %s", what, strings.Join(allowed, ", "), kindName(n))
		return nil
	}
	out := make(map[string]field, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !l.usable(k) {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			l.errf(k, "%s: keys must be plain words", what)
			continue
		}
		if prev, dup := out[k.Value]; dup {
			l.errf(k, "%s: duplicate key %q (first at line %d)", what, k.Value, prev.key.Line)
			continue
		}
		if allowed != nil && !slices.Contains(allowed, k.Value) {
			l.errf(k, "%s: unknown key %q (allowed: %s)", what, k.Value, strings.Join(allowed, ", "))
			continue
		}
		out[k.Value] = field{k, v}
	}
	return out
}

// usable reports whether n may be read: aliases are refused.
func (l *loader) usable(n *yaml.Node) bool {
	if n == nil {
		return false
	}
	if n.Kind == yaml.AliasNode {
		l.errf(n, "YAML aliases (*%s) are not supported: share actions with a menu and goto", n.Value)
		return false
	}
	return true
}

// str reads a non-empty scalar.
func (l *loader) str(n *yaml.Node, what string) (string, bool) {
	if !l.usable(n) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		l.errf(n, "%s: expected a string, got %s", what, kindName(n))
		return "", false
	}
	if n.Value == "" {
		l.errf(n, "%s: must not be empty", what)
		return "", false
	}
	return n.Value, true
}

// integer reads an integer scalar within [lo, hi].
func (l *loader) integer(n *yaml.Node, what string, lo, hi int) (int, bool) {
	if !l.usable(n) {
		return 0, false
	}
	v, err := strconv.Atoi(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		l.errf(n, "%s: expected a whole number from %d to %d, got %s", what, lo, hi, kindName(n))
		return 0, false
	}
	if v < lo || v > hi {
		l.errf(n, "%s: %d is out of range (expected %d to %d)", what, v, lo, hi)
		return 0, false
	}
	return v, true
}

// seq returns the items of a sequence; a single scalar counts as a one-item
// sequence when scalarOK.
func (l *loader) seq(n *yaml.Node, what string, scalarOK bool) ([]*yaml.Node, bool) {
	if !l.usable(n) {
		return nil, false
	}
	switch {
	case n.Kind == yaml.SequenceNode:
		return n.Content, true
	case scalarOK && n.Kind == yaml.ScalarNode && n.ShortTag() != "!!null":
		return []*yaml.Node{n}, true
	}
	l.errf(n, "%s: expected a list, got %s", what, kindName(n))
	return nil, false
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "nothing"
		}
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return strconv.Quote(v)
	}
	return "an empty document"
}
