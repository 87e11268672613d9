// Package wordcount counts the words of a text.
package wordcount

import (
	"strings"
	"unicode"
)

// Count returns how often each word occurs in text.
func Count(text string) map[string]int {
	counts := map[string]int{}
	notWord := func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }
	for _, w := range strings.FieldsFunc(text, notWord) {
		counts[strings.ToLower(w)]++
	}
	return counts
}
