package wordcount

import "testing"

func TestSimpleWords(t *testing.T) {
	got := Count("go is fun go")
	if got["go"] != 2 || got["fun"] != 1 {
		t.Fatalf("Count = %v", got)
	}
}
