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
	"testing"
)

// BenchmarkHotStream is 64 HTTP clients writing to one stream, for
// profiling the gateway's share of a call (make bench has the ratios):
// go test -run '^$' -bench HotStream -cpuprofile cpu.out ./internal/gateway.
func BenchmarkHotStream(b *testing.B) {
	g := newGateway(b)
	msg := map[string]any{"type": "Tick", "data": map[string]any{"n": 1}}
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if status, body := g.call("stream.write", "hot-1", msg); status != 200 {
				b.Errorf("status %d %s", status, body)
				return
			}
		}
	})
}
