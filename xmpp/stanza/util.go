package stanza

import (
	"strconv"
	"unicode/utf8"
)

func parseCharRef(s string) (rune, bool) {
	base := 10
	if len(s) > 0 && s[0] == 'x' {
		base, s = 16, s[1:]
	}
	n, err := strconv.ParseUint(s, base, 32)
	if err != nil || !utf8.ValidRune(rune(n)) {
		return 0, false
	}
	return rune(n), true
}

func utf8AppendRune(b []byte, r rune) []byte { return utf8.AppendRune(b, r) }
