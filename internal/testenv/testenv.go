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

// Package testenv starts the envtest control plane (a real kube-apiserver
// and etcd on 127.0.0.1) with jobstate's CRDs installed, once per test
// package, from TestMain.
package testenv

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	apiruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	jobstatev1alpha1 "github.com/jobstate-dev/jobstate/api/v1alpha1"
	"github.com/jobstate-dev/jobstate/pkg/stream"
)

// K8sVersion is the control plane version hack/envtest-assets.sh builds.
const K8sVersion = "1.37.2"

// SealerUser is the manager's ServiceAccount as config/default deploys it:
// the one identity config/admission lets seal EventStreams. Env.Client and
// Env.Config authenticate as it (with system:masters), as a manager does.
const SealerUser = "system:serviceaccount:jobstate-system:jobstate-controller-manager"

// GatewayUser is the EventoDB gateway's ServiceAccount as config/default
// deploys it, the other sealer identity config/admission allows.
const GatewayUser = "system:serviceaccount:jobstate-system:jobstate-gateway"

// Env is a running control plane.
type Env struct {
	Config *rest.Config
	Scheme *apiruntime.Scheme
	// Client talks to the API server directly (no cache) and can watch.
	Client client.WithWatch

	env *envtest.Environment
	// dir holds the certificates and etcd data of a control plane made by
	// StartRestartable; "" otherwise. apiserverLog is kube-apiserver's
	// output there.
	dir          string
	apiserverLog *os.File
}

// Scheme returns a scheme with the client-go types, CRDs and jobstate's
// API.
func Scheme() *apiruntime.Scheme {
	s := apiruntime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	utilruntime.Must(jobstatev1alpha1.AddToScheme(s))
	return s
}

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// AssetsDir is where envtest's binaries are: $KUBEBUILDER_ASSETS, or the
// setup-envtest store where `make envtest-assets` puts them.
func AssetsDir() string {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	data := os.Getenv("XDG_DATA_HOME")
	if data == "" {
		home, _ := os.UserHomeDir()
		data = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(data, "kubebuilder-envtest", "k8s", fmt.Sprintf("%s-%s-%s", K8sVersion, runtime.GOOS, runtime.GOARCH))
}

// Start starts kube-apiserver and etcd and installs the CRDs and the
// admission policies. It fails with a hint when the binaries are missing.
func Start() (*Env, error) { return startEnvironment(newEnvironment()) }

// StartLogged is Start for a person to use (make run): kube-apiserver's
// output is written to apiserver and etcd's to etcd (envtest discards both
// otherwise), and the objects that probed the admission policies are
// deleted, so that the cluster holds only what the person makes.
func StartLogged(apiserver, etcd io.Writer) (*Env, error) {
	env := newEnvironment()
	env.ControlPlane.APIServer = &envtest.APIServer{Out: apiserver, Err: apiserver}
	// As in StartRestartable: without a grace period, the watches still
	// open when it stops hold kube-apiserver past envtest's stop timeout.
	env.ControlPlane.APIServer.Configure().Set("shutdown-watch-termination-grace-period", "2s")
	env.ControlPlane.Etcd = &envtest.Etcd{Out: etcd, Err: etcd}
	e, err := startEnvironment(env)
	if err != nil {
		return nil, err
	}
	if err := e.deleteProbes(); err != nil {
		_ = e.Stop()
		return nil, fmt.Errorf("deleting the admission probes: %w", err)
	}
	return e, nil
}

// deleteProbes deletes what installAdmission made to probe the policies.
func (e *Env) deleteProbes() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, obj := range []client.Object{
		&jobstatev1alpha1.EventStream{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "admission-probe"}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "admission-probe"}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "admission-probe"}},
	} {
		if err := e.Client.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// newEnvironment is the envtest environment of jobstate's tests: its CRDs,
// the binaries of AssetsDir.
func newEnvironment() *envtest.Environment {
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: AssetsDir(),
	}
	configureAPIServer(env.ControlPlane.GetAPIServer())
	return env
}

// configureAPIServer turns on what stricter clusters (OpenShift, say) turn
// on beyond kube-apiserver's defaults, so that the RBAC the project ships
// is tested against them: OwnerReferencesPermissionEnforcement, which
// refuses an ownerReference with blockOwnerDeletion (a sealed segment's,
// a JobState's Lease's) to anyone who may not update the owner's
// finalizers.
func configureAPIServer(s *envtest.APIServer) {
	s.Configure().Append("enable-admission-plugins", "OwnerReferencesPermissionEnforcement")
}

// startEnvironment starts env's processes and installs what Start says.
func startEnvironment(env *envtest.Environment) (*Env, error) {
	assets := env.BinaryAssetsDirectory
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		return nil, fmt.Errorf("no kube-apiserver in %s: run `make envtest-assets` (builds it from the Go module proxy)", assets)
	}
	if _, err := env.Start(); err != nil {
		// Start can fail after the processes are up (a CRD that does not
		// install): stop them rather than leave them running.
		_ = env.Stop()
		return nil, fmt.Errorf("starting envtest control plane: %w", err)
	}
	e, err := start(env)
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return e, nil
}

// start connects as SealerUser and installs config/admission.
func start(env *envtest.Environment) (*Env, error) {
	sealer, err := env.AddUser(envtest.User{Name: SealerUser, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	cfg := sealer.Config()
	// Tests run many writers; the default client-side limit (5 QPS) would
	// measure the rate limiter instead of the API server.
	cfg.QPS, cfg.Burst = -1, -1
	scheme := Scheme()
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	e := &Env{Config: cfg, Scheme: scheme, Client: c, env: env}
	if err := e.installAdmission(); err != nil {
		return nil, fmt.Errorf("installing config/admission: %w", err)
	}
	return e, nil
}

// installAdmission creates the admission policies of config/admission and
// waits until the API server enforces them (policies take effect a moment
// after they are created).
func (e *Env) installAdmission() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.createPolicies(ctx); err != nil {
		return err
	}
	return e.waitAdmission(ctx)
}

// waitAdmission waits until the API server enforces config/admission's
// policies.
func (e *Env) waitAdmission(ctx context.Context) error {
	c, err := e.adminClient("admission-probe")
	if err != nil {
		return err
	}
	// Enforced once an admin who is not the sealer cannot create a stream
	// that claims sealed events.
	probe := &jobstatev1alpha1.EventStream{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "admission-probe"},
		Head:       &jobstatev1alpha1.EventStreamHead{Version: 0, First: 1},
	}
	if err := waitForbidden(ctx, c, probe, "only the EventStream sealer"); err != nil {
		return err
	}
	// And once a user allowed to create streams cannot set their
	// retention.
	creator, err := e.creatorClient(ctx)
	if err != nil {
		return err
	}
	probe = &jobstatev1alpha1.EventStream{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "admission-probe"},
		Spec:       jobstatev1alpha1.EventStreamSpec{Retention: &jobstatev1alpha1.RetentionPolicy{MaxEvents: ptr.To[int64](1)}},
	}
	if err := waitForbidden(ctx, creator, probe, "eventstreams/lifetime"); err != nil {
		return err
	}
	return e.waitStamped(ctx)
}

// waitStamped waits until the API server records the latest append's
// revision for a foreign write (config/admission/eventstream_stamp.yaml):
// a label on a stream just appended to is then accepted.
func (e *Env) waitStamped(ctx context.Context) error {
	streams, err := stream.New(e.Client, stream.Options{})
	if err != nil {
		return err
	}
	key := client.ObjectKey{Namespace: "default", Name: "admission-probe"}
	if _, err := streams.Append(ctx, key, []stream.EventData{{Type: "Probed"}}, stream.AppendOptions{}); err != nil {
		return err
	}
	label := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"probe":"stamped"}}}`))
	return wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		es := &jobstatev1alpha1.EventStream{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
		return e.Client.Patch(ctx, es, label, client.DryRunAll) == nil, nil
	})
}

// createPolicies creates every object of config/admission's policy files.
func (e *Env) createPolicies(ctx context.Context) error {
	files, err := filepath.Glob(filepath.Join(RepoRoot(), "config", "admission", "*.yaml"))
	files = slices.DeleteFunc(files, func(f string) bool { return filepath.Base(f) == "kustomization.yaml" })
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no policies in config/admission: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		for _, doc := range strings.Split(string(data), "\n---\n") {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			if err := e.Client.Create(ctx, u); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
		}
	}
	return nil
}

// waitForbidden waits until creating obj (dry run) is forbidden with a
// message containing want.
func waitForbidden(ctx context.Context, c client.Client, obj client.Object, want string) error {
	return wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		err := c.Create(ctx, obj.DeepCopyObject().(client.Object), client.DryRunAll)
		return apierrors.IsForbidden(err) && strings.Contains(err.Error(), want), nil
	})
}

// creatorClient is a client for a user who may create EventStreams and
// nothing else.
func (e *Env) creatorClient(ctx context.Context) (client.Client, error) {
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "admission-probe"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{jobstatev1alpha1.GroupVersion.Group}, Resources: []string{"eventstreams"}, Verbs: []string{"create"}}},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "admission-probe"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "admission-probe-creator"}},
	}
	for _, obj := range []client.Object{role, binding} {
		// A restarted API server has them from the first wait.
		if err := e.Client.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, err
		}
	}
	cfg, err := e.ConfigFor("admission-probe-creator")
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: e.Scheme})
}

// KubeConfig returns a kubeconfig for user as an admin (system:masters) of
// the control plane, for kubectl and other processes: a person is
// "developer", a manager SealerUser.
func (e *Env) KubeConfig(user string) ([]byte, error) {
	u, err := e.env.AddUser(envtest.User{Name: user, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	return u.KubeConfig()
}

// KubeConfigFor returns a kubeconfig for user name with no groups beyond
// system:authenticated, for a process that must run with exactly what RBAC
// grants it (the gateway as its ServiceAccount).
func (e *Env) KubeConfigFor(name string) ([]byte, error) {
	u, err := e.env.AddUser(envtest.User{Name: name}, nil)
	if err != nil {
		return nil, err
	}
	return u.KubeConfig()
}

// KubeConfigWithToken returns a kubeconfig that authenticates with a bearer
// token (a ServiceAccount's, from the TokenRequest API): a process given it
// has exactly what RBAC grants that ServiceAccount, as in a cluster.
func (e *Env) KubeConfigWithToken(token string) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: e.Config.Host, CertificateAuthorityData: e.Config.CAData}
	cfg.AuthInfos["token"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "token"}
	cfg.CurrentContext = "envtest"
	return clientcmd.Write(*cfg)
}

// ConfigFor returns a client config authenticated as user name, with no
// groups beyond system:authenticated: what it may do is what RBAC grants it.
func (e *Env) ConfigFor(name string) (*rest.Config, error) {
	return e.configAs(envtest.User{Name: name})
}

// configAs returns a client config authenticated as user, without the
// client-side rate limit.
func (e *Env) configAs(user envtest.User) (*rest.Config, error) {
	u, err := e.env.AddUser(user, e.Config)
	if err != nil {
		return nil, err
	}
	cfg := u.Config()
	cfg.QPS, cfg.Burst = -1, -1
	return cfg, nil
}

// adminClient returns a client for user in system:masters.
func (e *Env) adminClient(user string) (client.WithWatch, error) {
	cfg, err := e.configAs(envtest.User{Name: user, Groups: []string{"system:masters"}})
	if err != nil {
		return nil, err
	}
	return client.NewWithWatch(cfg, client.Options{Scheme: e.Scheme})
}

// ClientAs returns a client authenticated as user, bound in namespace ns to
// the ClusterRole in config/rbac/<roleFile> (created once per namespace as
// <role name>-<ns>): a client holding exactly a role the project ships.
func (e *Env) ClientAs(t testing.TB, ns, user, roleFile string) client.WithWatch {
	t.Helper()
	ctx := context.Background()
	data, err := os.ReadFile(filepath.Join(RepoRoot(), "config", "rbac", roleFile))
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(data, role); err != nil {
		t.Fatalf("%s: %v", roleFile, err)
	}
	role.Name += "-" + ns
	if err := e.Client.Create(ctx, role); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: role.Name + "-" + user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
	}
	if err := e.Client.Create(ctx, binding); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	cfg, err := e.ConfigFor(user)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: e.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// AdminAs returns a client authenticated as user in system:masters: a
// cluster admin who is not the sealer.
func (e *Env) AdminAs(t testing.TB, user string) client.WithWatch {
	t.Helper()
	c, err := e.adminClient(user)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Stop stops the control plane, and removes the directory of a restartable
// one.
func (e *Env) Stop() error {
	err := e.env.Stop()
	if e.dir != "" {
		err = errors.Join(err, e.apiserverLog.Close(), os.RemoveAll(e.dir))
	}
	return err
}

// Namespace creates a namespace with a random name for one test.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}
	if err := e.Client.Create(t.Context(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return ns.Name
}

// Main runs a test package's tests against one control plane, stored in
// *env for the tests to use. Call it from TestMain. A fuzzing run (-fuzz,
// with -run '^$') starts none: its targets are pure, and each fuzz worker
// process would start its own.
func Main(m *testing.M, env **Env) { run(m, env, Start) }

// run is Main with the control plane start makes.
func run(m *testing.M, env **Env, start func() (*Env, error)) {
	flag.Parse()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run())
	}
	e, err := start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*env = e
	code := m.Run()
	if err := e.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping envtest:", err)
	}
	os.Exit(code)
}
