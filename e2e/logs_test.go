package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// The e2e evidence of issue 11's evidence half: a failed task's status carries its last log
// lines with the app's generated secret redacted, and `reconciler logs` prints and follows the
// app's service logs.

const logsRecipe = "e2e-logs"

// makeLogsRecipe makes a recipe of two services: app, which prints its generated secret
// (api_key) at the start and exits 3 a second later, under a restart policy that gives up
// after one restart; and worker, which serves and stays up.
func makeLogsRecipe(t testing.TB, h *harness) {
	t.Helper()
	makeEchoRecipe(t, h, logsRecipe, "\nSECRET_API_KEY_VERSION=v1 # length=32\n", fmt.Sprintf(`services:
  app:
    image: %[1]s
    environment:
      - MESSAGE=hello from app
      - SECRET_FILE=/run/secrets/api_key
      - PRINT_SECRET=1
      - CRASH_AFTER=1s
    secrets:
      - api_key
    deploy:
      restart_policy:
        condition: on-failure
        max_attempts: 1
        delay: 0s
  worker:
    image: %[1]s
    environment:
      - MESSAGE=hello from worker

secrets:
  api_key:
    external: true
    name: ${STACK_NAME}_api_key_${SECRET_API_KEY_VERSION}
`, echoImage), nil)
}

var printedSecret = regexp.MustCompile(`the secret is (\S+) \(read error: <nil>\)`)

// TestLogsInStatusRedacted: the app's service prints its generated secret and crashes; the
// restart policy gives up, the app is Failed, and each failed task in the status carries its
// last log lines, the secret redacted. The value (read from the engine's own logs) appears
// nowhere in the status file or the reconciler's log. `reconciler logs` prints both services'
// lines; with --follow it streams until interrupted.
func TestLogsInStatusRedacted(t *testing.T) {
	h := startHarness(t)
	makeLogsRecipe(t, h)
	a := h.newApp("e2e-logs")
	gen := h.writeSpec(a.name, []byte(fmt.Sprintf("recipe: %s\nversion: %q\ntimeout: 2m\n", logsRecipe, miniRelease)))
	s := h.waitPhase(a.name, gen, "Failed")
	t.Logf("Failed: %s", s.Message)

	// The value, as the engine has it in the task's log.
	rc, err := suite.docker.ServiceLogs(context.Background(), a.stack()+"_app", container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	var raw strings.Builder
	if _, err := stdcopy.StdCopy(&raw, &raw, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	m := printedSecret.FindStringSubmatch(raw.String())
	if m == nil || len(m[1]) != 32 {
		t.Fatalf("the app did not print its 32-character secret; its logs:\n%s", raw.String())
	}
	value := m[1]

	full := rolloutFull(t, s)
	var logs []string
	for _, sv := range full.Services {
		for _, task := range sv.Tasks {
			if task.State == "failed" {
				if len(task.Logs) == 0 {
					t.Errorf("failed task of %s has no log lines in the status", sv.Name)
				}
				logs = append(logs, task.Logs...)
			}
		}
	}
	joined := strings.Join(logs, "\n")
	t.Logf("log lines in the status:\n%s", joined)
	for _, want := range []string{"the secret is [redacted]", "CRASH_AFTER 1s passed: exiting"} {
		if !strings.Contains(joined, want) {
			t.Errorf("the status's log lines lack %q", want)
		}
	}
	for what, path := range map[string]string{"status file": h.statusPath(a.name), "reconciler log": h.logPath} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), value) {
			t.Errorf("the %s holds the secret's value", what)
		}
	}

	r := h.cli(time.Minute, "logs", a.name)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	for _, want := range []string{"app.", "worker.", "| ", "echo: listening on :8080"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("reconciler logs lacks %q:\n%s", want, r)
		}
	}
	if !regexp.MustCompile(`(?m)^worker\.[0-9a-z]{12} \| .*echo: listening`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^app\.[0-9a-z]{12} \| .*CRASH_AFTER`).MatchString(r.stdout) {
		t.Errorf("reconciler logs does not prefix each service's lines with service.task:\n%s", r.stdout)
	}

	// --follow streams until interrupted.
	cmd := exec.Command(h.bin, append([]string{"logs", a.name, "--service", "worker", "--follow"}, h.flags()...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		first <- line
		io.Copy(io.Discard, out)
	}()
	select {
	case line := <-first:
		if !strings.HasPrefix(line, "worker.") {
			t.Errorf("--follow's first line %q", line)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("--follow printed nothing in 30s")
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		t.Fatalf("--follow ended by itself: %v", err)
	case <-time.After(time.Second):
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("--follow interrupted: %v, want exit 0", err)
		}
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		t.Error("--follow did not end within 5s of SIGINT")
	}
}
