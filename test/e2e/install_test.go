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

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jobstate-dev/jobstate/internal/testenv"
)

// systemNamespace is where config/default puts the manager and the gateway.
const systemNamespace = "jobstate-system"

// managerServiceAccount is the manager's ServiceAccount in systemNamespace:
// testenv.SealerUser.
const managerServiceAccount = "jobstate-controller-manager"

var install struct {
	once sync.Once
	out  string
	err  error
}

// installDefault applies config/default to the control plane with kubectl,
// as `kubectl apply -k config/default` on a cluster, once per test binary,
// and returns kubectl's output. The Deployments never get pods (there is no
// kubelet); the tests run their binaries as processes authenticated as the
// ServiceAccounts it created.
func installDefault(t *testing.T) string {
	t.Helper()
	install.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		install.out, install.err = kubectlAdmin(ctx, t, "apply", "--server-side", "--force-conflicts", "-k", filepath.Join(testenv.RepoRoot(), "config", "default"))
	})
	if install.err != nil {
		t.Fatalf("kubectl apply -k config/default: %v\n%s", install.err, install.out)
	}
	return install.out
}

var adminKubeConfig struct {
	once sync.Once
	path string
}

// adminKubeConfigPath returns the path of a kubeconfig for a cluster
// admin, written once per test binary.
func adminKubeConfigPath(t *testing.T) string {
	t.Helper()
	adminKubeConfig.once.Do(func() {
		dir, err := os.MkdirTemp("", "e2e-admin-")
		if err != nil {
			t.Fatal(err)
		}
		adminKubeConfig.path = writeKubeConfig(t, dir, "installer")
	})
	return adminKubeConfig.path
}

// kubectlAdmin runs the built kubectl as a cluster admin.
func kubectlAdmin(ctx context.Context, t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.CommandContext(ctx, filepath.Join(testenv.AssetsDir(), "kubectl"), append([]string{"--kubeconfig", adminKubeConfigPath(t)}, args...)...).CombinedOutput()
	return string(out), err
}

// TestInstall: `kubectl apply -k config/default` creates what a cluster
// needs to run jobstate (namespace, CRDs, least-privilege RBAC, the
// manager's ServiceAccount and two-replica leader-elected Deployment, the
// metrics Service, the admission policies, the gateway), and
// `make deploy` (through `make build-installer`'s install.yaml, with the
// image IMG) applies the same objects over it.
func TestInstall(t *testing.T) {
	ctx := t.Context()
	out := installDefault(t)
	for _, want := range []string{
		"namespace/jobstate-system serverside-applied",
		"customresourcedefinition.apiextensions.k8s.io/jobstates.state.jobstate.dev serverside-applied",
		"serviceaccount/jobstate-controller-manager serverside-applied",
		"clusterrole.rbac.authorization.k8s.io/jobstate-manager-role serverside-applied",
		"clusterrole.rbac.authorization.k8s.io/jobstate-metrics-reader serverside-applied",
		"deployment.apps/jobstate-controller-manager serverside-applied",
		"service/jobstate-controller-manager-metrics-service serverside-applied",
		"validatingadmissionpolicy.admissionregistration.k8s.io/jobstate-eventstream-sealer serverside-applied",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply -k config/default printed no %q:\n%s", want, out)
		}
	}

	for _, name := range []string{"jobstates", "eventstreams", "eventsegments"} {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		get(ctx, t, client.ObjectKey{Name: name + ".state.jobstate.dev"}, crd)
		if !crdEstablished(crd) {
			t.Errorf("CRD %s is not Established: %+v", crd.Name, crd.Status.Conditions)
		}
	}
	get(ctx, t, client.ObjectKey{Name: systemNamespace}, &corev1.Namespace{})
	get(ctx, t, client.ObjectKey{Namespace: systemNamespace, Name: managerServiceAccount}, &corev1.ServiceAccount{})
	checkManagerDeployment(ctx, t)
	checkManagerBindings(ctx, t)

	svc := &corev1.Service{}
	get(ctx, t, client.ObjectKey{Namespace: systemNamespace, Name: "jobstate-controller-manager-metrics-service"}, svc)
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8443 || svc.Spec.Selector["control-plane"] != "controller-manager" {
		t.Errorf("metrics Service: ports %+v selector %v, want 8443 to the manager's pods", svc.Spec.Ports, svc.Spec.Selector)
	}
	get(ctx, t, client.ObjectKey{Namespace: systemNamespace, Name: "jobstate-controller-manager"}, &policyv1.PodDisruptionBudget{})
	reader := &rbacv1.ClusterRole{}
	get(ctx, t, client.ObjectKey{Name: "jobstate-metrics-reader"}, reader)
	if len(reader.Rules) != 1 || !slices.Equal(reader.Rules[0].NonResourceURLs, []string{"/metrics"}) {
		t.Errorf("jobstate-metrics-reader rules = %+v, want GET /metrics", reader.Rules)
	}
	for _, name := range []string{"jobstate-eventstream-sealer", "jobstate-eventsegment-sealer", "jobstate-eventstream-lifetime", "jobstate-gateway-namespaces"} {
		get(ctx, t, client.ObjectKey{Name: name}, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{})
	}

	checkInstaller(ctx, t)
}

// checkManagerDeployment: two replicas, leader-elected, probed, bounded,
// non-root on a read-only root filesystem with the RuntimeDefault seccomp
// profile, as the manager's ServiceAccount.
func checkManagerDeployment(ctx context.Context, t *testing.T) {
	t.Helper()
	d := &appsv1.Deployment{}
	get(ctx, t, client.ObjectKey{Namespace: systemNamespace, Name: "jobstate-controller-manager"}, d)
	pod := d.Spec.Template.Spec
	if ptr.Deref(d.Spec.Replicas, 1) != 2 || pod.ServiceAccountName != managerServiceAccount || len(pod.Containers) != 1 {
		t.Fatalf("manager Deployment: replicas %v, serviceAccountName %q, %d containers; want 2, %s, 1",
			ptr.Deref(d.Spec.Replicas, 1), pod.ServiceAccountName, len(pod.Containers), managerServiceAccount)
	}
	c := pod.Containers[0]
	for _, arg := range []string{"--leader-elect", "--metrics-bind-address=:8443", "--health-probe-bind-address=:8081"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("manager args %v lack %s", c.Args, arg)
		}
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("manager probes: liveness %+v readiness %+v", c.LivenessProbe, c.ReadinessProbe)
	}
	if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
		t.Errorf("manager resources %+v: want requests and limits", c.Resources)
	}
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || !ptr.Deref(psc.RunAsNonRoot, false) || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("manager pod securityContext %+v: want runAsNonRoot and seccomp RuntimeDefault", psc)
	}
	if sc == nil || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) || ptr.Deref(sc.AllowPrivilegeEscalation, true) {
		t.Errorf("manager container securityContext %+v: want a read-only root filesystem and no privilege escalation", sc)
	}
}

// checkManagerBindings: the manager's ServiceAccount is bound to its
// ClusterRole, the leader-election Role in its namespace and the
// metrics-auth ClusterRole.
func checkManagerBindings(ctx context.Context, t *testing.T) {
	t.Helper()
	subject := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: managerServiceAccount, Namespace: systemNamespace}
	for _, name := range []string{"jobstate-manager-rolebinding", "jobstate-metrics-auth-rolebinding"} {
		b := &rbacv1.ClusterRoleBinding{}
		get(ctx, t, client.ObjectKey{Name: name}, b)
		if !slices.Contains(b.Subjects, subject) {
			t.Errorf("%s subjects %+v lack %+v", name, b.Subjects, subject)
		}
	}
	b := &rbacv1.RoleBinding{}
	get(ctx, t, client.ObjectKey{Namespace: systemNamespace, Name: "jobstate-leader-election-rolebinding"}, b)
	if !slices.Contains(b.Subjects, subject) {
		t.Errorf("leader-election RoleBinding subjects %+v lack %+v", b.Subjects, subject)
	}
}

// checkInstaller: `make deploy` (`make build-installer`, which renders
// config/default with the image IMG into one install.yaml, and kubectl
// apply of it) over the installed objects applies every object again and
// changes the Deployments' image; `make install` applies the CRDs.
func checkInstaller(ctx context.Context, t *testing.T) {
	t.Helper()
	const img = "registry.example:5000/jobstate/controller:v9.9.9"
	dist := t.TempDir()
	out := runMake(ctx, t, "deploy", "DIST="+dist, "IMG="+img)
	rendered, err := kubectlAdmin(ctx, t, "kustomize", filepath.Join(testenv.RepoRoot(), "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Count(out, " serverside-applied"), strings.Count(rendered, "\nkind: "); got != want {
		t.Errorf("make deploy applied %d objects, config/default renders %d:\n%s", got, want, out)
	}
	if _, err := os.Stat(filepath.Join(dist, "install.yaml")); err != nil {
		t.Errorf("make deploy left no install.yaml: %v", err)
	}
	for _, name := range []string{"jobstate-controller-manager", "jobstate-gateway"} {
		d := &appsv1.Deployment{}
		get(ctx, t, client.ObjectKey{Namespace: systemNamespace, Name: name}, d)
		if got := d.Spec.Template.Spec.Containers[0].Image; got != img {
			t.Errorf("%s image %q after make deploy IMG=%s", name, got, img)
		}
	}
	if out := runMake(ctx, t, "install"); strings.Count(out, "customresourcedefinition.apiextensions.k8s.io/") != 3 {
		t.Errorf("make install:\n%s", out)
	}
}

// runMake runs make target in the repository with the admin's kubeconfig,
// and returns its output.
func runMake(ctx context.Context, t *testing.T, target string, vars ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, "make", append([]string{"-s", target}, vars...)...)
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append(os.Environ(), "KUBECONFIG="+adminKubeConfigPath(t))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", target, err, out)
	}
	return string(out)
}

// get reads key into obj with the admin client, failing the test if it
// is not there.
func get(ctx context.Context, t *testing.T, key client.ObjectKey, obj client.Object) {
	t.Helper()
	if err := env.Client.Get(ctx, key, obj); err != nil {
		t.Fatalf("%T %s: %v", obj, key, err)
	}
}

func crdEstablished(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established {
			return c.Status == apiextensionsv1.ConditionTrue
		}
	}
	return false
}

// serviceAccountToken returns a token for ServiceAccount ns/name from the
// TokenRequest API.
func serviceAccountToken(ctx context.Context, t *testing.T, ns, name string) string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s/%s: %v", ns, name, err)
	}
	return tr.Status.Token
}

// serviceAccountKubeConfig writes a kubeconfig into dir that authenticates
// as ServiceAccount ns/name with a token from the TokenRequest API, and
// returns its path: a process given it has exactly what RBAC grants the
// ServiceAccount.
func serviceAccountKubeConfig(ctx context.Context, t *testing.T, dir, ns, name string) string {
	t.Helper()
	data, err := env.KubeConfigWithToken(serviceAccountToken(ctx, t, ns, name))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, ns+"."+name+".kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// managerKubeConfig installs config/default and returns a kubeconfig for
// the manager's ServiceAccount it created.
func managerKubeConfig(ctx context.Context, t *testing.T, dir string) string {
	t.Helper()
	installDefault(t)
	return serviceAccountKubeConfig(ctx, t, dir, systemNamespace, managerServiceAccount)
}

// boundServiceAccount makes a ServiceAccount name in ns and binds it there
// to config/default's ClusterRole clusterRole (to nothing if "").
func boundServiceAccount(ctx context.Context, t *testing.T, ns, name, clusterRole string) {
	t.Helper()
	objs := []client.Object{&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}}
	if clusterRole != "" {
		installDefault(t)
		objs = append(objs, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}},
		})
	}
	for _, obj := range objs {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
}

// workerKubeConfig makes a ServiceAccount "worker" in ns bound to
// config/default's worker ClusterRole (config/rbac/worker_role.yaml), and
// returns a kubeconfig for it: the demo worker as a cluster runs it.
func workerKubeConfig(ctx context.Context, t *testing.T, dir, ns string) string {
	t.Helper()
	boundServiceAccount(ctx, t, ns, "worker", "jobstate-worker-role")
	return serviceAccountKubeConfig(ctx, t, dir, ns, "worker")
}
