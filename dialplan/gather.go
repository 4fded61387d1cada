package dialplan

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/switchboard-voice/switchboard/media"
)

// Gather defaults.
const (
	defaultMaxDigits  = 1
	defaultTimeout    = 5 * time.Second
	defaultInterDigit = 3 * time.Second
	defaultTerminator = "#"
	defaultRetries    = 2
)

// maxPromptBytes bounds a prompt file (about 30 minutes of 16-bit 8 kHz audio).
const maxPromptBytes = 32 << 20

var (
	dtmfRE       = regexp.MustCompile(`^[0-9*#A-D]+$`)
	gatherNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

func (pl *planLoader) gather(opts map[string]field) *gatherSpec {
	g := &gatherSpec{retries: defaultRetries, req: GatherRequest{
		MaxDigits: defaultMaxDigits, Timeout: defaultTimeout,
		InterDigitTimeout: defaultInterDigit, Terminator: defaultTerminator,
	}}
	if f, ok := opts["prompt"]; ok {
		g.req.Prompt = pl.prompt(f.val, "gather: prompt")
	}
	if f, ok := opts["name"]; ok {
		if s, ok := pl.str(f.val, "gather: name"); ok && !gatherNameRE.MatchString(s) {
			pl.errf(f.val, "gather: name %q: use letters, digits, '-' and '_'", s)
		} else if ok {
			g.name = s
			pl.gathers[s] = true
		}
	}
	if f, ok := opts["max_digits"]; ok {
		g.req.MaxDigits, _ = pl.integer(f.val, "gather: max_digits", 1, 32)
	}
	if f, ok := opts["retries"]; ok {
		g.retries, _ = pl.integer(f.val, "gather: retries", 0, 10)
	}
	if f, ok := opts["timeout"]; ok {
		g.req.Timeout = pl.duration(f.val, "gather: timeout")
	}
	if f, ok := opts["inter_digit_timeout"]; ok {
		g.req.InterDigitTimeout = pl.duration(f.val, "gather: inter_digit_timeout")
	}
	if f, ok := opts["terminator"]; ok {
		v := f.val
		switch {
		case !pl.usable(v):
		case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null":
			pl.errf(v, "gather: terminator is empty: quote it (\"#\"; a bare # starts a YAML comment), or write \"\" for none")
		case v.Kind == yaml.ScalarNode && v.Value == "":
			g.req.Terminator = ""
		case v.Kind == yaml.ScalarNode && len(v.Value) == 1 && dtmfRE.MatchString(v.Value):
			g.req.Terminator = v.Value
		default:
			pl.errf(v, "gather: terminator: expected one key of 0-9 * # A-D, or \"\" for none, got %s", kindName(v))
		}
	}
	if f, ok := opts["branches"]; ok {
		g.branches = map[string]*branch{}
		for digits, bf := range pl.fields(f.val, "gather: branches") {
			switch {
			case !dtmfRE.MatchString(digits):
				pl.errf(bf.key, "gather: branch %q: expected digits (0-9 * # A-D)", digits)
			case len(digits) > g.req.MaxDigits && g.req.MaxDigits > 0:
				pl.errf(bf.key, "gather: branch %q can never be chosen: max_digits is %d", digits, g.req.MaxDigits)
			case g.req.Terminator != "" && strings.Contains(digits, g.req.Terminator):
				pl.errf(bf.key, "gather: branch %q can never be chosen: %s is the terminator", digits, g.req.Terminator)
			default:
				if b := pl.branch(bf.val, "gather: branch "+digits); b != nil {
					g.branches[digits] = b
				}
			}
		}
	}
	if f, ok := opts["no_input"]; ok {
		g.noInput = pl.branch(f.val, "gather: no_input")
	}
	if f, ok := opts["no_match"]; ok {
		if len(g.branches) == 0 {
			pl.errf(f.key, "gather: no_match without branches: any input is accepted")
		}
		g.noMatch = pl.branch(f.val, "gather: no_match")
	}
	return g
}

// branch reads a rule or menu name (a jump) or an action list.
func (pl *planLoader) branch(n *yaml.Node, what string) *branch {
	if !pl.usable(n) {
		return nil
	}
	b := &branch{line: n.Line, col: n.Column}
	switch n.Kind {
	case yaml.ScalarNode:
		var ok bool
		if b.target, ok = pl.str(n, what); !ok {
			return nil
		}
	case yaml.MappingNode: // a single action
		b.actions = pl.actionList(&yaml.Node{Kind: yaml.SequenceNode, Line: n.Line, Column: n.Column, Content: []*yaml.Node{n}}, what)
	default:
		b.actions = pl.actionList(n, what)
	}
	return b
}

func (pl *planLoader) duration(n *yaml.Node, what string) time.Duration {
	s, ok := pl.str(n, what)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(s)
	if secs, e := strconv.Atoi(s); e == nil {
		d, err = time.Duration(secs)*time.Second, nil
	}
	if err != nil || d <= 0 || d > 5*time.Minute {
		pl.errf(n, "%s: expected a duration from 1ms to 5m such as 5s or 1500ms, got %q", what, s)
		return 0
	}
	return d
}

// prompt loads a WAV file of the prompts directory, once per plan.
func (pl *planLoader) prompt(n *yaml.Node, what string) *Prompt {
	name, ok := pl.str(n, what)
	if !ok {
		return nil
	}
	if !filepath.IsLocal(name) {
		pl.errf(n, "%s: %q must be a path inside the prompts directory %s", what, name, pl.promptDir)
		return nil
	}
	if !pl.promptDirOK {
		return nil // reported once, at prompts
	}
	path := filepath.Join(pl.promptDir, name)
	if p, ok := pl.plan.prompts[path]; ok {
		return p
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		pl.errf(n, "%s: prompt file %s does not exist", what, path)
		return nil
	case err != nil:
		pl.errf(n, "%s: prompt file %s: %v", what, path, err)
		return nil
	case !st.Mode().IsRegular():
		pl.errf(n, "%s: prompt %s is not a regular file", what, path)
		return nil
	case st.Size() > maxPromptBytes:
		pl.errf(n, "%s: prompt %s is too large (%d MB; at most %d MB)", what, path, st.Size()>>20, maxPromptBytes>>20)
		return nil
	}
	samples, err := media.ReadWAVFile(path)
	if err != nil {
		pl.errf(n, "%s: prompt %s is not a usable WAV file: %v", what, name, errors.Unwrap(err))
		return nil
	}
	if len(samples) == 0 {
		pl.errf(n, "%s: prompt %s has no audio", what, path)
		return nil
	}
	p := &Prompt{Name: name, Samples: samples}
	pl.plan.prompts[path] = p
	return p
}
