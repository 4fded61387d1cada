package dialplan

import "testing"

// TestYAMLSyntaxErrorsHaveLineAndColumn: yaml.v3 gives a line only, and one
// line too early for errors of its parser; the loader reports the line and
// a column at (or as near as the message allows to) the mistake.
func TestYAMLSyntaxErrorsHaveLineAndColumn(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"tab indentation", "rules:\n\t- name: a\n",
			"2:1: invalid YAML: found character that cannot start any token"},
		{"reserved character on the first line", "timezone: @UTC\n",
			"1:11: invalid YAML: found character that cannot start any token"},
		{"unclosed quote", "rules:\n  - name: \"a\n    default: true\n",
			"2:11: invalid YAML: found unexpected end of stream"},
		{"second colon in a plain value", "rules:\n  - name: a: b\n",
			"2:12: invalid YAML: mapping values are not allowed in this context"},
		{"colon after a multi-line plain value", "rules:\n  - name a\n    default: true\n",
			"3:12: invalid YAML: mapping values are not allowed in this context"},
		// yaml.v3 says line 1: the list starts on line 2.
		{"item indented wrongly", "rules:\n  - name: a\n   default: true\n",
			"2:3: invalid YAML: did not find expected '-' indicator (in the list that starts here: an item below is not indented like the others)"},
		{"flow mapping never closed", "rules:\n  - name: a\n    match: {to: \"1\"\n    actions: [hangup]\n",
			"3:12: invalid YAML: did not find expected ',' or '}' (the { here is never closed)"},
		{"flow list never closed", "rules:\n  - name: a\n    actions: [{play: \"x]\"}, hangup\n  - name: b\n",
			"3:14: invalid YAML: did not find expected ',' or ']' (the [ here is never closed)"},
		{"extra brace", "rules:\n  - name: a\n    match: {to: '1'}}\n",
			"2:5: invalid YAML: did not find expected key (in the mapping that starts here"},
		{"open list at the end", "rules: [\n",
			"1:9: invalid YAML: did not find expected node content at the end of the file (is a [, { or quote left open?)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := dpErrors(t, tc.src, dpLoadOptions)
			if len(got) != 1 || len(got[0]) < len(tc.want) || got[0][:len(tc.want)] != tc.want {
				t.Fatalf("got %q\nwant %q...", got, tc.want)
			}
		})
	}
}
