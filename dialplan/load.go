package dialplan

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// LoadFile reads and validates the dialplan at path; prompts are found
// relative to the file's directory. The error is a *LoadErrors.
func LoadFile(path string, opts LoadOptions) (*Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &LoadErrors{{File: path, Msg: fmt.Sprintf("cannot read the dialplan: %v", err)}}
	}
	return Load(path, data, filepath.Dir(path), opts)
}

// Load parses and validates a dialplan read from the file name; relative
// prompt paths start at baseDir. Every problem found is reported at once, as
// a *LoadErrors; the plan is nil when there is any.
func Load(name string, data []byte, baseDir string, opts LoadOptions) (*Plan, error) {
	sum := sha256.Sum256(data)
	pl := &planLoader{
		loader:  loader{file: name},
		opts:    opts,
		baseDir: baseDir,
		blocks:  map[string]*block{},
		gathers: map[string]bool{},
		plan: &Plan{
			File:     name,
			Hash:     hex.EncodeToString(sum[:]),
			Menus:    map[string]*Menu{},
			holidays: map[string]bool{},
			prompts:  map[string]*Prompt{},
			now:      opts.Now,
		},
	}
	if pl.plan.now == nil {
		pl.plan.now = time.Now
	}
	if pl.opts.Agents != nil {
		pl.agents = setOf(opts.Agents)
	}
	if pl.opts.Trunks != nil {
		pl.trunks = setOf(opts.Trunks)
	}
	var doc yaml.Node
	if err := unmarshalSafely(data, &doc); err != nil {
		pl.errs = append(pl.errs, yamlSyntaxError(name, data, err))
		return nil, &pl.errs
	}
	pl.document(&doc)
	if len(pl.errs) > 0 {
		errs := pl.sorted()
		return nil, &errs
	}
	return pl.plan, nil
}

// planLoader is the state of one Load.
type planLoader struct {
	loader
	opts           LoadOptions
	baseDir        string
	promptDir      string
	promptDirOK    bool
	agents, trunks map[string]bool // nil: not checked
	plan           *Plan
	blocks         map[string]*block
	rulesKey       *yaml.Node
	gathers        map[string]bool // gather names
	digitRefs      []digitRef      // {{digits.NAME}} uses, checked once all gathers are known
	depth          int             // nesting of action lists
}

type digitRef struct {
	name string
	node *yaml.Node
}

// errYAMLPanic marks a panic of the YAML parser: it has no place in the file.
var errYAMLPanic = errors.New("the YAML parser failed")

func unmarshalSafely(data []byte, doc *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: %w: %v", errYAMLPanic, r)
		}
	}()
	return yaml.Unmarshal(data, doc)
}

func (pl *planLoader) document(doc *yaml.Node) {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		pl.errs = append(pl.errs, LoadError{File: pl.file, Msg: "the dialplan is empty: expected keys timezone, holidays, prompts, rules, menus"})
		return
	}
	top := pl.fields(doc.Content[0], "dialplan", "timezone", "holidays", "prompts", "rules", "menus")
	if top == nil {
		return
	}
	if f, ok := top["timezone"]; ok {
		pl.plan.Timezone = pl.zone(f.val)
	}
	if f, ok := top["holidays"]; ok {
		pl.holidays(f.val)
	}
	pl.promptDir, pl.promptDirOK = pl.baseDir, true
	if f, ok := top["prompts"]; ok {
		pl.prompts(f.val)
	}
	if f, ok := top["menus"]; ok {
		pl.menus(f.val)
	}
	if f, ok := top["rules"]; ok {
		pl.rulesKey = f.key
		pl.rules(f.val)
	} else {
		pl.errf(doc.Content[0], "dialplan: no rules: expected a rules list with one default rule")
	}
	pl.validate()
}

func (pl *planLoader) zone(n *yaml.Node) *time.Location {
	name, ok := pl.str(n, "timezone")
	if !ok {
		return nil
	}
	if name == "Local" {
		pl.errf(n, "time zone \"Local\" depends on the server: name an IANA zone such as America/New_York or UTC")
		return nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		pl.errf(n, "unknown time zone %q (expected an IANA name such as America/New_York or UTC)", name)
		return nil
	}
	return loc
}

func (pl *planLoader) holidays(n *yaml.Node) {
	items, _ := pl.seq(n, "holidays", false)
	for _, it := range items {
		s, ok := pl.str(it, "holiday")
		if !ok {
			continue
		}
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			pl.errf(it, "holiday %q: expected a date like 2026-12-25", s)
			continue
		}
		pl.plan.holidays[d.Format(time.DateOnly)] = true
	}
}

func (pl *planLoader) prompts(n *yaml.Node) {
	dir, ok := pl.str(n, "prompts")
	if !ok {
		pl.promptDirOK = false
		return
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(pl.baseDir, dir)
	}
	pl.promptDir = dir
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		pl.promptDirOK = false
		pl.errf(n, "prompts: %s is not a readable directory", dir)
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func (pl *planLoader) blockName(n *yaml.Node, kind string) (string, bool) {
	name, ok := pl.str(n, kind+" name")
	if !ok {
		return "", false
	}
	if !nameRE.MatchString(name) {
		pl.errf(n, "%s name %q: use letters, digits, '-', '_' and '.' (at most 64)", kind, name)
		return "", false
	}
	if prev, dup := pl.blocks[name]; dup {
		pl.errf(n, "%s name %q is already used by the %s at line %d", kind, name, prev.kind, prev.line)
		return "", false
	}
	return name, true
}

func (pl *planLoader) menus(n *yaml.Node) {
	if !pl.usable(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		pl.errf(n, "menus: expected a mapping of menu name to {actions: [...]}, got %s", kindName(n))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name, ok := pl.blockName(k, "menu")
		if !ok {
			continue
		}
		b := &block{name: name, kind: "menu", line: k.Line, col: k.Column}
		pl.blocks[name] = b
		pl.plan.Menus[name] = &Menu{Name: name, Line: k.Line, body: b}
		f := pl.fields(v, "menu "+name, "actions")
		if f == nil {
			continue
		}
		if a, ok := f["actions"]; ok {
			b.actions = pl.actionList(a.val, "actions")
		} else {
			pl.errf(v, "menu %s: no actions", name)
		}
	}
}

func (pl *planLoader) rules(n *yaml.Node) {
	items, _ := pl.seq(n, "rules", false)
	for _, it := range items {
		f := pl.fields(it, "rule", "name", "default", "match", "actions")
		if f == nil {
			continue
		}
		r := &Rule{Line: it.Line}
		if nf, ok := f["name"]; ok {
			r.Name, _ = pl.blockName(nf.val, "rule")
		} else {
			pl.errf(it, "rule: no name (every rule needs one, for logs and goto)")
		}
		r.body = &block{name: r.Name, kind: "rule", line: it.Line, col: it.Column}
		if r.Name != "" {
			pl.blocks[r.Name] = r.body
		}
		if df, ok := f["default"]; ok {
			r.Default = pl.boolean(df.val, "default")
		}
		if mf, ok := f["match"]; ok {
			if r.Default {
				pl.errf(mf.key, "rule %s: a default rule has no match (it runs when no other rule matches)", r.Name)
			} else {
				r.match = pl.match(mf.val)
			}
		}
		if af, ok := f["actions"]; ok {
			r.body.actions = pl.actionList(af.val, "actions")
		} else {
			pl.errf(it, "rule %s: no actions", r.Name)
		}
		pl.plan.Rules = append(pl.plan.Rules, r)
	}
}

func (pl *planLoader) boolean(n *yaml.Node, what string) bool {
	if !pl.usable(n) {
		return false
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		return strings.EqualFold(n.Value, "true")
	}
	pl.errf(n, "%s: expected true or false, got %s", what, kindName(n))
	return false
}

func setOf(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}
