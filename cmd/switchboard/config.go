package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the gateway configuration file.
type Config struct {
	SIP          SIPConfig              `yaml:"sip"`
	Media        MediaConfig            `yaml:"media"`
	Agents       map[string]AgentConfig `yaml:"agents"`
	DefaultAgent string                 `yaml:"default_agent"`
	// Dialplan is the routing file; empty sends every call to DefaultAgent.
	Dialplan string         `yaml:"dialplan"`
	Trunks   []TrunkConfig  `yaml:"trunks"`
	Transfer TransferConfig `yaml:"transfer"`
	Access   AccessSection  `yaml:"access"`
	Admin    AdminConfig    `yaml:"admin"`
	Store    StoreConfig    `yaml:"store"`
	Limits   LimitsConfig   `yaml:"limits"`
	CDR      CDRConfig      `yaml:"cdr"`
	Drain    DrainConfig    `yaml:"drain"`
	Log      LogConfig      `yaml:"log"`
}

// SIPConfig is the signalling listener.
type SIPConfig struct {
	Listen        string   `yaml:"listen"`
	Transports    []string `yaml:"transports"`
	PublicAddress string   `yaml:"public_address"`
	UserAgent     string   `yaml:"user_agent"`
	Ringing       bool     `yaml:"ringing"`
	TLS           SIPTLS   `yaml:"tls"`
}

// MediaConfig is RTP and codec negotiation.
type MediaConfig struct {
	RTPAddress        string   `yaml:"rtp_address"`
	RTPPortMin        int      `yaml:"rtp_port_min"`
	RTPPortMax        int      `yaml:"rtp_port_max"`
	Codecs            []string `yaml:"codecs"`
	PreferOurCodecs   bool     `yaml:"prefer_our_codecs"`
	SymmetricRTP      bool     `yaml:"symmetric_rtp"`
	InactivityTimeout Duration `yaml:"inactivity_timeout"`
	RTCPInterval      Duration `yaml:"rtcp_interval"`
	PortQuarantine    Duration `yaml:"port_quarantine"`
	MaxPlayout        Duration `yaml:"max_playout"`
}

// AgentConfig is one agent a call can be handed to.
type AgentConfig struct {
	Type string `yaml:"type"` // echo | prompt | websocket
	File string `yaml:"file"` // prompt: WAV file
	Then string `yaml:"then"` // prompt: hangup (default) | wait
	// websocket: the bot's URL, its protocol (twilio), extra headers, a
	// bearer token (or token_file) and how long to wait for it to accept.
	URL            string            `yaml:"url"`
	Protocol       string            `yaml:"protocol"`
	Headers        map[string]string `yaml:"headers"`
	Token          Secret            `yaml:"token"`
	TokenFile      string            `yaml:"token_file"`
	ConnectTimeout Duration          `yaml:"connect_timeout"`
	// SilenceTimeout fails the agent (its on_failure runs) when the bot
	// sends nothing for this long with none of its audio playing. Unset:
	// 30s; 0 turns it off (a pointer tells the two apart).
	SilenceTimeout *Duration `yaml:"silence_timeout"`
	// SIPHeaders are INVITE headers (X-...) whose values the gateway reads
	// from the caller's INVITE and passes to the bot as custom parameters.
	SIPHeaders []string `yaml:"sip_headers"`
}

// LogConfig selects level and format of the logs.
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Duration is a time.Duration written as "30s" in YAML.
type Duration time.Duration

// UnmarshalYAML parses Go duration strings.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration (examples: 500ms, 30s, 5m)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// ConfigError is one problem in a config file, located by line.
type ConfigError struct {
	File string
	Line int
	Msg  string
}

func (e ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// ConfigErrors is every problem found in one file.
type ConfigErrors []ConfigError

func (es ConfigErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// LoadConfig reads the file at path ("" for the embedded defaults) on top
// of the defaults, expanding ${ENV} references.
func LoadConfig(path string, defaults []byte) (*Config, error) {
	var cfg Config
	if err := decodeStrict("(defaults)", defaults, &cfg); err != nil {
		return nil, err
	}
	name := "(defaults)"
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		name = path
		// The file's agent list replaces the default one rather than merging.
		defaultAgents := cfg.Agents
		cfg.Agents = nil
		if err := decodeStrict(path, data, &cfg); err != nil {
			return nil, err
		}
		if cfg.Agents == nil {
			cfg.Agents = defaultAgents
		}
		defaults = data
	}
	if errs := cfg.validate(name, defaults); len(errs) > 0 {
		return nil, errs
	}
	if path != "" {
		cfg.CDR.dir = filepath.Dir(path) // cdr.file: auto lives next to the config
	}
	return &cfg, nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${NAME} in values with the environment's value;
// comments are left alone. Unset names are errors, because a silently empty
// password is worse than a refusal.
func expandEnv(file string, data []byte) ([]byte, error) {
	var errs ConfigErrors
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i, line := range lines {
		code, comment := splitComment(line)
		code = envRef.ReplaceAllFunc(code, func(m []byte) []byte {
			name := string(m[2 : len(m)-1])
			v, ok := os.LookupEnv(name)
			if !ok {
				errs = append(errs, ConfigError{file, i + 1, fmt.Sprintf("environment variable %s is not set", name)})
			}
			return []byte(v)
		})
		lines[i] = append(code, comment...)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return bytes.Join(lines, nil), nil
}

// splitComment cuts a YAML line at a '#' that starts a comment: at the line
// start or after white space, outside quotes.
func splitComment(line []byte) (code, comment []byte) {
	var quote byte
	for i, c := range line {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return append([]byte(nil), line[:i]...), line[i:]
		}
	}
	return append([]byte(nil), line...), nil
}

func decodeStrict(file string, data []byte, into any) error {
	data, err := expandEnv(file, data)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(into); err != nil && !errors.Is(err, io.EOF) {
		return yamlErrors(file, err)
	}
	return nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlErrors turns yaml.v3 messages ("line 4: field lisen not found in type
// main.SIPConfig") into file:line errors an admin can act on.
func yamlErrors(file string, err error) error {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var out ConfigErrors
	for _, m := range msgs {
		ce := ConfigError{File: file, Msg: m}
		if sub := yamlLine.FindStringSubmatch(m); sub != nil {
			fmt.Sscan(sub[1], &ce.Line)
			ce.Msg = friendlyYAML(sub[2])
		}
		out = append(out, ce)
	}
	return out
}

var notFound = regexp.MustCompile(`^field (\S+) not found in type \S+$`)

func friendlyYAML(msg string) string {
	if sub := notFound.FindStringSubmatch(msg); sub != nil {
		return fmt.Sprintf("unknown key %q", sub[1])
	}
	return msg
}

// validate checks values; each error names the line of the offending key.
func (c *Config) validate(file string, data []byte) ConfigErrors {
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	var errs ConfigErrors
	bad := func(path, format string, args ...any) {
		errs = append(errs, ConfigError{File: file, Line: lineOf(&root, path), Msg: path + ": " + fmt.Sprintf(format, args...)})
	}
	if listen, err := netip.ParseAddrPort(c.SIP.Listen); err != nil {
		bad("sip.listen", "%q is not IP:port (example: 0.0.0.0:5060)", c.SIP.Listen)
	} else if listen.Addr().IsUnspecified() && c.SIP.PublicAddress == "" {
		// 0.0.0.0 in Contact or SDP would read as "hold" to the far end.
		bad("sip.public_address", "set it to the address callers reach us on when sip.listen is %s", listen.Addr())
	}
	for _, t := range c.SIP.Transports {
		if t != "udp" && t != "tcp" {
			bad("sip.transports", "unsupported transport %q (udp, tcp)", t)
		}
	}
	if strings.ContainsAny(c.SIP.PublicAddress, " \r\n:/@;") && !isIPv6(c.SIP.PublicAddress) {
		bad("sip.public_address", "%q is not a host name or IP address", c.SIP.PublicAddress)
	}
	if strings.ContainsAny(c.SIP.UserAgent, "\r\n") {
		bad("sip.user_agent", "must be one line")
	}
	if c.Media.RTPAddress != "" {
		if _, err := netip.ParseAddr(c.Media.RTPAddress); err != nil {
			bad("media.rtp_address", "%q is not an IP address", c.Media.RTPAddress)
		}
	}
	if c.Media.RTPPortMin < 1024 || c.Media.RTPPortMax > 65534 || c.Media.RTPPortMin+1 > c.Media.RTPPortMax {
		bad("media.rtp_port_min", "RTP ports must satisfy 1024 <= rtp_port_min < rtp_port_max <= 65534 (got %d-%d)", c.Media.RTPPortMin, c.Media.RTPPortMax)
	}
	if len(c.Media.Codecs) == 0 {
		bad("media.codecs", "list at least one codec (PCMU, PCMA)")
	}
	for _, codec := range c.Media.Codecs {
		if codec != "PCMU" && codec != "PCMA" {
			bad("media.codecs", "unsupported codec %q (PCMU, PCMA)", codec)
		}
	}
	if c.Media.RTCPInterval != 0 && time.Duration(c.Media.RTCPInterval) < time.Second {
		bad("media.rtcp_interval", "must be at least 1s")
	}
	for name, a := range c.Agents {
		path := "agents." + name
		switch a.Type {
		case "echo":
		case "prompt":
			if a.File == "" {
				bad(path+".file", "a prompt agent needs a WAV file")
			} else if _, err := os.Stat(a.File); err != nil {
				bad(path+".file", "cannot read %q: %v", a.File, errors.Unwrap(err))
			}
			if a.Then != "" && a.Then != "hangup" && a.Then != "wait" {
				bad(path+".then", "%q is not hangup or wait", a.Then)
			}
		case "websocket":
			if u, err := url.Parse(a.URL); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
				bad(path+".url", "%q is not a ws:// or wss:// URL", a.URL)
			}
			if a.Protocol != "" && a.Protocol != "twilio" {
				bad(path+".protocol", "unknown protocol %q (twilio)", a.Protocol)
			}
			if a.Token != "" && a.TokenFile != "" {
				bad(path+".token_file", "set token or token_file, not both")
			}
			for k, v := range a.Headers {
				if strings.ContainsAny(k+v, "\r\n") {
					bad(path+".headers", "header %q must be one line", k)
				}
			}
			for _, h := range a.SIPHeaders {
				if h == "" || strings.ContainsAny(h, " \t:\r\n") {
					bad(path+".sip_headers", "%q is not a SIP header name", h)
				}
			}
		default:
			bad(path+".type", "unknown agent type %q (echo, prompt, websocket)", a.Type)
		}
	}
	if _, ok := c.Agents[c.DefaultAgent]; !ok {
		bad("default_agent", "no agent named %q under agents", c.DefaultAgent)
	}
	c.validateSections(bad)
	c.validateSecurity(bad)
	if c.Dialplan != "" {
		if _, err := os.Stat(c.Dialplan); err != nil {
			bad("dialplan", "cannot read %q", c.Dialplan)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", "%q is not text or json", c.Log.Format)
	}
	return errs
}

func isIPv6(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is6()
}

// lineOf finds the line of a dotted key path in a YAML document, 0 if absent.
func lineOf(root *yaml.Node, path string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, key := range strings.Split(path, ".") {
		if n != nil && n.Kind == yaml.SequenceNode {
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
			continue
		}
		if n == nil || n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				line = n.Content[i].Line
				next = n.Content[i+1]
				break
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}
