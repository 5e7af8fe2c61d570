package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
)

// insertRecipe is the suite's recipe running a tag of this run's echo image (which serves
// /secret-value/{name}), with its secret marked generate=false in .env.sample: abra (and the
// reconciler) never generates it; an operator inserts it.
const insertRecipe = "e2e-insert"

// TestSecretInsert: a recipe whose secret is marked generate=false in .env.sample.
//
//   - Without the secret, the app waits for it (Deploying), its message naming the secret and
//     the command that inserts it (`reconciler secret insert`); nothing of it is created. (At
//     the attempt's timeout it would be Failed saying the same: a unit test covers that.)
//   - `reconciler secret insert APP api_key --version v1` with the value on standard input
//     creates <stack>_api_key_v1 labelled for the app and its stack, and with an owner.
//   - The same generation then deploys and is Ready, and the app reads the value from
//     /run/secrets/api_key.
//   - The spec deleted, the app is Deleted and the secret is gone with everything else.
//   - The value shows up (raw, base64, hex, as bytes) in no log, status file or command output
//     (secret insert, status -o json, render, diff).
func TestSecretInsert(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := startHarness(t)
	img := testImage(t, "insert")
	makeVariantRecipe(t, h, insertRecipe,
		[]edit{{"image: " + echoImage + "\n", "image: " + img + "\n"}},
		[]edit{{fmt.Sprintf("SECRET_API_KEY_VERSION=v1 # length=%d", secretLength), "SECRET_API_KEY_VERSION=v1 # generate=false"}})
	a := h.newApp("e2e-insert")
	secret := a.stack() + "_api_key_v1"
	value := "e2e-inserted-" + rand.Text()
	outputs := map[string]string{}
	defer leakScan(t, h, map[string]string{"the inserted secret": value}, outputs)
	keep := func(what string, r cliResult) { outputs[what] = r.stdout + r.stderr }

	gen := h.writeSpec(a.name, a.specOf(insertRecipe, miniRelease))
	s, err := h.awaitStatus(a.name, "waiting for the secret", func(s appStatus) (bool, string) {
		if s.ObservedGeneration == gen && s.Phase == "Failed" {
			return true, ""
		}
		return s.ObservedGeneration == gen && s.Phase == "Deploying" && strings.Contains(s.Message, "reconciler secret insert"), ""
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("without the secret: %s: %s", s.Phase, s.Message)
	if s.Phase != "Deploying" || !strings.Contains(s.Message, "reconciler secret insert") || !strings.Contains(s.Message, "api_key") {
		t.Fatalf("status %s %q: want Deploying, waiting, naming the secret (api_key, %s) and the command `reconciler secret insert`", s.Phase, s.Message, secret)
	}
	if _, _, err := suite.docker.SecretInspectWithRaw(ctx, secret); !cerrdefs.IsNotFound(err) {
		t.Errorf("secret %s exists before it was inserted (err %v): the reconciler generated a generate=false secret?", secret, err)
	}

	r, err := h.cliWith(time.Minute, nil, value, "secret", "insert", a.name, "api_key", "--version", "v1")
	keep("secret insert", r)
	if err != nil {
		t.Fatal(err)
	}
	if r.code != 0 {
		t.Fatalf("secret insert: want exit 0: %s", r)
	}
	t.Logf("secret insert: %s", strings.TrimSpace(r.stdout+r.stderr))
	inserted, _, err := suite.docker.SecretInspectWithRaw(ctx, secret)
	if err != nil {
		t.Fatalf("after secret insert: %v", err)
	}
	for k, want := range map[string]string{appLabel: a.name, namespaceLabel: a.stack()} {
		if got := inserted.Spec.Labels[k]; got != want {
			t.Errorf("inserted secret %s: label %s = %q, want %q", secret, k, got, want)
		}
	}
	if inserted.Spec.Labels[ownerLabel] == "" {
		t.Errorf("inserted secret %s has no %s label: the reconciler would not own it; labels %v", secret, ownerLabel, inserted.Spec.Labels)
	}

	h.waitPhase(a.name, gen, "Ready")
	if _, err := readSecretValue(a.port, "api_key", time.Minute, func(v string) bool { return v == value }); err != nil {
		t.Errorf("the app does not read the inserted value from /run/secrets/api_key: %v", err)
	}
	keep("status -o json", h.cli(time.Minute, "status", a.name, "-o", "json"))
	keep("render", h.cli(time.Minute, "render", h.specPath(a.name)))
	keep("diff", h.cli(time.Minute, "diff", h.specPath(a.name)))

	h.deleteSpec(a.name)
	if s, err := h.waitDeleted(a.name); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("Deleted: %s", s.Message)
	}
	if _, _, err := suite.docker.SecretInspectWithRaw(ctx, secret); !cerrdefs.IsNotFound(err) {
		t.Errorf("after teardown, secret %s: %v, want it gone", secret, err)
	}
	h.assertNoResidue(a.name)
}
