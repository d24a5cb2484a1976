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
	"crypto/md5" //nolint:gosec // Message DB's consumer-group hash, not security.
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
)

// StreamAnnotation holds an EventStream's EventoDB stream name, as the
// client wrote it; `kubectl get es` shows it in the STREAM column.
const StreamAnnotation = "eventodb.jobstate.dev/stream"

// maxStreamName bounds a stream name in bytes, as EventoDB clients send it.
const maxStreamName = 1024

// readablePrefix bounds the readable part of a mapped object name.
const readablePrefix = 40

// objectName maps an EventoDB stream name to the name of its EventStream.
// A name that is a valid DNS-1123 label (lowercase letters, digits and
// '-', at most 63) is its own object name. Any other name, like
// "Account:Orders+x" or "konto-über", becomes a readable lowercase prefix,
// a '.' and a hash of the whole name: labels never contain a '.', so a
// mapped name never equals another stream's own name, and the hash keeps
// mapped names apart (64 bits of SHA-256).
func objectName(stream string) string {
	if len(validation.IsDNS1123Label(stream)) == 0 {
		return stream
	}
	sum := sha256.Sum256([]byte(stream))
	return readable(stream) + "." + hex.EncodeToString(sum[:8])
}

// readable keeps the letters and digits of s, lowercased, with runs of
// anything else as one '-'.
func readable(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if b.Len() >= readablePrefix {
			break
		}
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(r)
			dash = false
		default:
			dash = true
		}
	}
	if b.Len() == 0 {
		return "s"
	}
	return b.String()
}

// streamName is the EventoDB name of es: its annotation, or (for a stream
// written by a Go client) its object name.
func streamName(es *jobstatev1alpha1.EventStream) string {
	if name, ok := es.Annotations[StreamAnnotation]; ok {
		return name
	}
	return es.Name
}

// category is the part of a stream name before its first '-' (the whole
// name if it has none), as in Message DB and EventoDB.
func category(stream string) string {
	if i := strings.IndexByte(stream, '-'); i >= 0 {
		return stream[:i]
	}
	return stream
}

// cardinalID is the stream's id up to its first '+': "account-123+retry"
// is 123. A stream without an id has "".
func cardinalID(stream string) string {
	i := strings.IndexByte(stream, '-')
	if i < 0 {
		return ""
	}
	id := stream[i+1:]
	if j := strings.IndexByte(id, '+'); j >= 0 {
		return id[:j]
	}
	return id
}

// consumerMember is the member of a consumer group of size that a stream
// belongs to: Message DB's hash_64 (the first 8 bytes of the MD5 of the
// cardinal id, a big-endian signed integer), its absolute value, mod size.
// It must match EventoDB's and Message DB's exactly, or two consumers of
// one group on different servers would both, or neither, process a stream.
func consumerMember(stream string, size int64) int64 {
	sum := md5.Sum([]byte(cardinalID(stream))) //nolint:gosec // See above.
	h := int64(binary.BigEndian.Uint64(sum[:8]))
	if h < 0 {
		h = -h // math.MinInt64 stays negative; its remainder is still in range below.
	}
	m := h % size
	if m < 0 {
		m += size
	}
	return m
}
