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

package lease

// CrashForTest stops renewing without releasing, as a holder that crashed
// would: the Lease stays held by it until waiters see its TTL pass. Lost is
// not closed, and a later Release does nothing.
func (l *Lock) CrashForTest() { l.once.Do(func() { close(l.stop); <-l.done }) }
