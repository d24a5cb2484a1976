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

package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// call is a decoded request body: ["method", arg, ...].
type call struct {
	method string
	args   []json.RawMessage
}

// decodeCall parses a request body. Every way it can be wrong is a 400
// that says what is wrong and where.
func decodeCall(body []byte) (call, *Error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return call{}, invalid(`the request body is empty: send a JSON array ["method", ...args]`)
	}
	if body[0] != '[' {
		return call{}, invalid(`the request body must be a JSON array ["method", ...args], got %s`, jsonKind(body))
	}
	var list []json.RawMessage
	if err := json.Unmarshal(body, &list); err != nil {
		return call{}, invalid("the request body is not valid JSON: %s", describeJSONError(body, err))
	}
	if len(list) == 0 {
		return call{}, invalid(`the request array is empty: its first element names the method, e.g. ["stream.version", "account-123"]`)
	}
	var method string
	if err := json.Unmarshal(list[0], &method); err != nil || method == "" {
		return call{}, invalid("the first element of the request array must be the method name (a non-empty string), got %s", jsonKind(list[0]))
	}
	return call{method: method, args: list[1:]}, nil
}

// describeJSONError says where a syntax error is.
func describeJSONError(body []byte, err error) string {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("%s at byte %d", se.Error(), se.Offset)
	}
	return err.Error()
}

// jsonKind names what a JSON value is, for error messages.
func jsonKind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// args are a call's arguments, read by position with the name the error
// messages use for each.
type args struct {
	method string
	list   []json.RawMessage
}

// atMost refuses a call with more than n arguments.
func (a args) atMost(n int) *Error {
	if len(a.list) > n {
		return invalid("%s takes at most %d argument(s), got %d", a.method, n, len(a.list))
	}
	return nil
}

// present reports whether argument i was sent and is not null.
func (a args) present(i int) bool {
	return i < len(a.list) && !bytes.Equal(bytes.TrimSpace(a.list[i]), []byte("null"))
}

// name reads argument i, a required string such as a stream name; empty is
// allowed only if allowEmpty.
func (a args) name(i int, what string, allowEmpty bool) (string, *Error) {
	if i >= len(a.list) {
		return "", invalid("%s requires argument %d: %s", a.method, i+1, what)
	}
	var s string
	if err := json.Unmarshal(a.list[i], &s); err != nil || jsonKind(a.list[i]) != "a string" {
		return "", invalid("%s: %s must be a string, got %s", a.method, what, jsonKind(a.list[i]))
	}
	if s == "" && !allowEmpty {
		return "", invalid("%s: %s must not be empty", a.method, what)
	}
	return s, nil
}

// object reads argument i as an object; absent or null is an empty one.
func (a args) object(i int, what string) (object, *Error) {
	if !a.present(i) {
		return object{path: what}, nil
	}
	return parseObject(a.list[i], a.method+": "+what)
}

// object is a JSON object whose fields are read by name with a type each;
// fields it does not read are ignored (EventoDB ignores them too).
type object struct {
	path   string
	fields map[string]json.RawMessage
}

func parseObject(raw json.RawMessage, path string) (object, *Error) {
	o := object{path: path}
	if len(bytes.TrimSpace(raw)) == 0 || bytes.TrimSpace(raw)[0] != '{' {
		return o, invalid("%s must be an object, got %s", path, jsonKind(raw))
	}
	if err := json.Unmarshal(raw, &o.fields); err != nil {
		return o, invalid("%s is not a valid object: %v", path, err)
	}
	return o, nil
}

// has reports whether field was sent and is not null.
func (o object) has(field string) bool {
	raw, ok := o.fields[field]
	return ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

func (o object) string(field string) (string, bool, *Error) {
	if !o.has(field) {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(o.fields[field], &s); err != nil {
		return "", false, invalid("%s.%s must be a string, got %s", o.path, field, jsonKind(o.fields[field]))
	}
	return s, true, nil
}

// int reads an integer field; 5 and 5.0 are integers, 5.5 and 1e300 are
// not.
func (o object) int(field string) (int64, bool, *Error) {
	if !o.has(field) {
		return 0, false, nil
	}
	raw := o.fields[field]
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil || jsonKind(raw) != "a number" {
		return 0, false, invalid("%s.%s must be an integer, got %s", o.path, field, jsonKind(raw))
	}
	if i, err := strconv.ParseInt(n.String(), 10, 64); err == nil {
		return i, true, nil
	}
	f, err := strconv.ParseFloat(n.String(), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false, invalid("%s.%s must be an integer, got %s", o.path, field, n)
	}
	return int64(f), true, nil
}

func (o object) object(field string) (object, bool, *Error) {
	if !o.has(field) {
		return object{path: o.path + "." + field}, false, nil
	}
	sub, err := parseObject(o.fields[field], o.path+"."+field)
	return sub, err == nil, err
}

// rawObject returns a field that must hold a JSON object, as sent.
func (o object) rawObject(field string) (json.RawMessage, bool, *Error) {
	if !o.has(field) {
		return nil, false, nil
	}
	if _, err := parseObject(o.fields[field], o.path+"."+field); err != nil {
		return nil, false, err
	}
	return o.fields[field], true, nil
}
