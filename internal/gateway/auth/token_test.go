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

package auth_test

import (
	"encoding/base64"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/jobstate-dev/jobstate/internal/gateway/auth"
)

// tokenFormat is the format EventoDB's clients expect.
var tokenFormat = regexp.MustCompile(`^ns_[A-Za-z0-9_-]+_[0-9a-f]{64}$`)

func TestNewTokenParses(t *testing.T) {
	for _, ns := range []string{"a", "orders", "a-b-9", "0", strings.Repeat("x", 63)} {
		t.Run(ns, func(t *testing.T) {
			tok, err := auth.NewToken(ns)
			if err != nil {
				t.Fatal(err)
			}
			if !tokenFormat.MatchString(tok) {
				t.Errorf("NewToken(%q) = %q, not in the ns_ token format", ns, tok)
			}
			got, err := auth.ParseToken(tok)
			if err != nil || got != ns {
				t.Errorf("ParseToken(NewToken(%q)) = %q, %v", ns, got, err)
			}
			again, err := auth.NewToken(ns)
			if err != nil || again == tok {
				t.Errorf("two NewToken(%q) gave %q and %q, %v", ns, tok, again, err)
			}
		})
	}
}

func TestNewTokenRefusesInvalidNamespace(t *testing.T) {
	for _, ns := range []string{"", "Orders", "a_b", "a.b", "-a", strings.Repeat("x", 64)} {
		tok, err := auth.NewToken(ns)
		if !errors.Is(err, auth.ErrInvalidNamespace) || tok != "" {
			t.Errorf("NewToken(%q) = %q, %v; want an error matching ErrInvalidNamespace", ns, tok, err)
		}
	}
}

func TestParseTokenRefusesMalformed(t *testing.T) {
	hex := strings.Repeat("0123456789abcdef", 4)
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for name, tok := range map[string]string{
		"empty":                     "",
		"prefix only":               "ns_",
		"upper-case prefix":         "NS_" + enc("orders") + "_" + hex,
		"no secret":                 "ns_" + enc("orders"),
		"empty secret":              "ns_" + enc("orders") + "_",
		"upper-case hex":            "ns_" + enc("orders") + "_" + strings.ToUpper(hex),
		"short secret":              "ns_" + enc("orders") + "_" + hex[1:],
		"long secret":               "ns_" + enc("orders") + "_" + hex + "0",
		"no namespace":              "ns__" + hex,
		"padded namespace":          "ns_" + base64.URLEncoding.EncodeToString([]byte("order")) + "_" + hex,
		"standard base64":           "ns_" + base64.RawStdEncoding.EncodeToString([]byte("a?>")) + "_" + hex,
		"non-canonical base64":      "ns_YR_" + hex, // "a" is "YQ"
		"invalid namespace":         "ns_" + enc("Orders") + "_" + hex,
		"namespace with underscore": "ns_" + enc("a_b") + "_" + hex,
		"too long":                  "ns_" + enc(strings.Repeat("x", 200)) + "_" + hex,
		"trailing space":            "ns_" + enc("orders") + "_" + hex + " ",
	} {
		t.Run(name, func(t *testing.T) {
			ns, err := auth.ParseToken(tok)
			var e *auth.Error
			if !errors.Is(err, auth.ErrInvalidToken) || !errors.As(err, &e) || ns != "" {
				t.Fatalf("ParseToken(%q) = %q, %v; want an *auth.Error matching ErrInvalidToken", tok, ns, err)
			}
		})
	}
}

// Every string ParseToken accepts is the one spelling of its namespace's
// token with that secret, and names a valid namespace; every other gets an
// ErrInvalidToken.
func FuzzParseToken(f *testing.F) {
	tok, err := auth.NewToken("orders")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{tok, "ns_YQ_" + strings.Repeat("a", 64), "ns_YR_" + strings.Repeat("a", 64), "ns_", "garbage"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		ns, err := auth.ParseToken(tok)
		if err != nil {
			if !errors.Is(err, auth.ErrInvalidToken) || ns != "" {
				t.Fatalf("ParseToken(%q) = %q, %v", tok, ns, err)
			}
			return
		}
		secret := tok[strings.LastIndexByte(tok, '_')+1:]
		if want := "ns_" + base64.RawURLEncoding.EncodeToString([]byte(ns)) + "_" + secret; tok != want {
			t.Fatalf("ParseToken accepted %q for namespace %q, whose spelling is %q", tok, ns, want)
		}
		if _, err := auth.NewToken(ns); err != nil {
			t.Fatalf("ParseToken accepted %q naming %q, which NewToken refuses: %v", tok, ns, err)
		}
	})
}
