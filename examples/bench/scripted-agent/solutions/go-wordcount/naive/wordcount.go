// Package wordcount counts the words of a text.
package wordcount

import "strings"

// Count returns how often each word occurs in text.
func Count(text string) map[string]int {
	counts := map[string]int{}
	for _, w := range strings.Fields(text) {
		counts[strings.ToLower(w)]++
	}
	return counts
}
