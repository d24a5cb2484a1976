/*
Copyright 2026 The jobstate Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package text_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jobstate-dev/jobstate/internal/text"
)

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		s      string
		n      int
		marker string
		want   string
	}{
		{"short enough", "abc", 3, "...", "abc"},
		{"empty", "", 0, "...", ""},
		{"ascii with a marker", "abcdefgh", 6, "...", "abc..."},
		{"ascii without a marker", "abcdefgh", 4, "", "abcd"},
		// "é" is 2 bytes, "日" 3 and "🙂" 4: a byte cut at n would split them.
		{"multi-byte, counted in characters", "ééééé", 5, "...", "ééééé"},
		{"multi-byte with a marker", "日本語のテキスト", 5, "...", "日本..."},
		{"multi-byte without a marker", "🙂🙂🙂", 2, "", "🙂🙂"},
		{"marker longer than n", "abcdef", 2, "...", "ab"},
		{"invalid UTF-8 counts a byte a character", "a\xffbcd", 3, "", "a\xffb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := text.Truncate(tc.s, tc.n, tc.marker)
			if got != tc.want {
				t.Errorf("Truncate(%q, %d, %q) = %q, want %q", tc.s, tc.n, tc.marker, got, tc.want)
			}
			if n := utf8.RuneCountInString(got); n > tc.n {
				t.Errorf("result has %d characters, more than %d", n, tc.n)
			}
			if utf8.ValidString(tc.s) && !utf8.ValidString(got) {
				t.Errorf("result %q of a valid string is not valid UTF-8", got)
			}
		})
	}
}

// A byte-indexed cut (s[:n]) of a string of 3-byte characters splits one
// whenever n is not a multiple of 3; Truncate never does.
func TestTruncateNeverSplitsACharacter(t *testing.T) {
	s := strings.Repeat("語", 400) // 1200 bytes
	for n := range 410 {
		got := text.Truncate(s, n, "...")
		if !utf8.ValidString(got) || utf8.RuneCountInString(got) != min(n, 400) {
			t.Fatalf("Truncate to %d: %d characters, valid UTF-8 %t", n, utf8.RuneCountInString(got), utf8.ValidString(got))
		}
	}
}
