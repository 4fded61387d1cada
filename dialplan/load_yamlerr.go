package dialplan

import (
	"bytes"
	"errors"
	"regexp"
	"strconv"
	"strings"
)

// yaml.v3 reports a syntax error as "yaml: line N: problem", without a
// column. For errors of its parser (as opposed to its scanner) N is the
// 0-based line of the construct the parser was in, so it names the line
// before; on the first line it names none. parserProblems are those errors,
// each with what to tell the admin about the place N points at.
var parserProblems = map[string]string{
	"did not find expected key":              "in the mapping that starts here: a line below is indented wrongly, or has an extra bracket",
	"did not find expected '-' indicator":    "in the list that starts here: an item below is not indented like the others",
	"did not find expected ',' or ']'":       "the [ here is never closed",
	"did not find expected ',' or '}'":       "the { here is never closed",
	"did not find expected node content":     "a value is missing",
	"did not find expected <document start>": "",
	"did not find expected <stream-start>":   "",
	"found duplicate %TAG directive":         "",
	"found duplicate %YAML directive":        "",
	"found incompatible YAML document":       "",
	"found undefined tag handle":             "",
}

var yamlLineRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// yamlSyntaxError places a yaml.v3 syntax error in data at a line and a
// column, as near the mistake as the message allows.
func yamlSyntaxError(file string, data []byte, err error) LoadError {
	e := LoadError{File: file, Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	m := yamlLineRE.FindStringSubmatch(err.Error())
	if m == nil || errors.Is(err, errYAMLPanic) {
		return e // no place to give
	}
	problem := m[2]
	e.Msg = "invalid YAML: " + problem
	e.Line = 1
	if m[1] != "" {
		e.Line, _ = strconv.Atoi(m[1])
	}
	hint, fromParser := parserProblems[problem]
	if fromParser && m[1] != "" {
		e.Line++
	}
	e.Line = max(e.Line, 1)
	lines := strings.Split(string(bytes.TrimRight(data, "\n")), "\n")
	if e.Line > len(lines) || strings.TrimSpace(lines[e.Line-1]) == "" && e.Line == len(lines) {
		// Past the last line: something opened above was never closed.
		e.Line = max(len(lines), 1)
		e.Column = len(strings.TrimRight(lines[e.Line-1], " \t\r")) + 1
		e.Msg += " at the end of the file (is a [, { or quote left open?)"
		return e
	}
	e.Column = yamlColumn(lines[e.Line-1], problem)
	if hint != "" {
		e.Msg += " (" + hint + ")"
	}
	return e
}

// yamlColumn guesses where on line the problem is (1-based).
func yamlColumn(line, problem string) int {
	code := yamlCode(line)
	col := -1
	switch problem {
	case "found character that cannot start any token":
		if i := strings.IndexFunc(line, func(r rune) bool { return r != ' ' }); i >= 0 && line[i] == '\t' {
			col = i // a tab where indentation must be spaces
		} else {
			col = strings.IndexAny(code, "@`\t")
		}
	case "mapping values are not allowed in this context":
		col = lastColon(code)
	case "found unexpected end of stream", "found unexpected document indicator":
		col = openQuote(line)
	case "did not find expected ',' or ']'":
		col = unclosed(code, '[', ']')
	case "did not find expected ',' or '}'":
		col = unclosed(code, '{', '}')
	case "did not find expected key":
		// A block mapping starts at its first key, after any "- ".
		col = len(line) - len(strings.TrimLeft(line, " -"))
	}
	if col < 0 {
		col = len(line) - len(strings.TrimLeft(line, " \t"))
	}
	return col + 1
}

// yamlCode is line with quoted text and a trailing comment blanked out, so
// that brackets and colons inside strings do not count; offsets are kept.
func yamlCode(line string) string {
	b := []byte(line)
	var quote byte
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
			b[i] = ' '
		case c == '"' || c == '\'':
			quote = c
			b[i] = ' '
		case c == '#' && (i == 0 || b[i-1] == ' ' || b[i-1] == '\t'):
			return string(b[:i])
		}
	}
	return string(b)
}

// lastColon is the last ':' that ends a key (followed by a space or the end).
func lastColon(code string) int {
	for i := len(code) - 1; i >= 0; i-- {
		if code[i] == ':' && (i+1 == len(code) || code[i+1] == ' ' || code[i+1] == '\t') {
			return i
		}
	}
	return -1
}

// openQuote is the quote that opens a string the line does not close.
func openQuote(line string) int {
	open, quote := -1, byte(0)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0 && c == quote:
			quote, open = 0, -1
		case quote == 0 && (c == '"' || c == '\''):
			quote, open = c, i
		case quote == 0 && c == '#' && (i == 0 || line[i-1] == ' '):
			return -1
		}
	}
	return open
}

// unclosed is the last opener of the pair that the line does not close.
func unclosed(code string, opener, closer byte) int {
	var stack []int
	for i := 0; i < len(code); i++ {
		switch code[i] {
		case opener:
			stack = append(stack, i)
		case closer:
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		}
	}
	if len(stack) == 0 {
		return -1
	}
	return stack[len(stack)-1]
}
