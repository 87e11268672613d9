package wordcount

import (
	"reflect"
	"testing"
)

func TestCaseAndPunctuationAreIgnored(t *testing.T) {
	got := Count("Go, go!  GO? Gophers\tlove go.")
	want := map[string]int{"go": 4, "gophers": 1, "love": 1}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Count = %v, want %v", got, want)
	}
}

func TestEmptyTextHasNoWords(t *testing.T) {
	if got := Count("   "); len(got) != 0 {
		t.Fatalf("Count = %v, want no words", got)
	}
}
