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

// Package text shortens strings to the length limits of API fields without
// splitting a character. Lengths are counted as the API server counts an
// OpenAPI maxLength: in Unicode code points, not bytes.
package text

import "unicode/utf8"

// Truncate returns s if it has at most n characters, and otherwise its
// first characters followed by marker (for example "..."), n characters in
// all. If marker alone is longer than n, s is cut to n characters without
// it. Bytes that are not valid UTF-8 count one character each, as in
// utf8.RuneCountInString.
func Truncate(s string, n int, marker string) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	keep := n - utf8.RuneCountInString(marker)
	if keep < 0 {
		keep, marker = n, ""
	}
	// Ranging over a string steps from character to character: i is where
	// the keep+1'th one starts. s has more than n >= keep characters, so the
	// loop always returns.
	kept := 0
	for i := range s {
		if kept == keep {
			return s[:i] + marker
		}
		kept++
	}
	return s + marker
}
