package spec

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const minimal = "recipe: custom-html\nversion: 1.7.1+1.27.2\n"

var testDefaults = Defaults{DomainSuffix: "ci.example.org"}

func dur(s string) Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return Duration{d}
}

// base is the spec minimal parses to for app "a"; cases change what they test.
func base(change func(*Spec)) *Spec {
	s := &Spec{Recipe: "custom-html", Version: "1.7.1+1.27.2", Tier: TierInstall, Domain: "a.ci.example.org", Timeout: dur("10m")}
	if change != nil {
		change(s)
	}
	return s
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		file string
		app  string
		data string
		d    Defaults
		want *Spec
	}{
		{name: "minimal gets defaults", data: minimal, want: base(nil)},
		{name: "no domain suffix", data: minimal, d: Defaults{}, want: base(func(s *Spec) { s.Domain = "a" })},
		{name: "suffix with dots around", data: minimal, d: Defaults{DomainSuffix: ".ci.example.org."}, want: base(nil)},
		{name: "minReady unset is nil: the recipe's monitor decides", data: minimal, want: base(nil)},
		{name: "minReady 0s turns the window off", data: minimal + "minReady: 0s\n", want: base(func(s *Spec) { s.MinReady = &Duration{} })},
		{name: "minReady set", data: minimal + "minReady: 2s\n", want: base(func(s *Spec) { d := dur("2s"); s.MinReady = &d })},
		{name: "minReady null is unset", data: minimal + "minReady:\n", want: base(nil)},
		{name: "run-wide timeout", data: minimal, d: Defaults{DomainSuffix: "ci.example.org", Timeout: 3 * time.Minute},
			want: base(func(s *Spec) { s.Timeout = dur("3m") })},
		{name: "design example", app: "ch-1a2b3c", data: `
recipe: custom-html          # required
version: 1.7.1+1.27.2
tier: upgrade
upgradeFrom: 1.7.0+1.27.1
domain: ch-1a2b3c.ci.example.org
env:
  LETS_ENCRYPT_ENV: ""
timeout: 15m
ttl: 1h
suspend: false
health:
  - http: "https://{domain}/"
    ok: [200]
  - tcp: "127.0.0.1:64738"
    stable: 2
`, want: &Spec{Recipe: "custom-html", Version: "1.7.1+1.27.2", Tier: TierUpgrade, UpgradeFrom: "1.7.0+1.27.1",
			Domain: "ch-1a2b3c.ci.example.org", Env: map[string]string{"LETS_ENCRYPT_ENV": ""}, Timeout: dur("15m"), TTL: dur("1h"),
			Health: []Probe{{HTTP: "https://{domain}/", OK: []int{200}}, {TCP: "127.0.0.1:64738", Stable: 2}}}},
		{name: "json with escapes and tabs", file: "specs/a.json",
			data: "{\n\t\"recipe\": \"custom-html\",\n\t\"version\": \"1.7.1+1.27.2\",\n\t\"env\": {\"URL\": \"https:\\/\\/x\\/\", \"SMILE\": \"\\ud83d\\ude00\", \"N\": 3},\n\t\"ttl\": \"90s\"\n}\n",
			want: base(func(s *Spec) {
				s.Env = map[string]string{"URL": "https://x/", "SMILE": "😀", "N": "3"}
				s.TTL = dur("90s")
			})},
		{name: "json content in a .yml file", data: `{"recipe": "custom-html", "version": "1.7.1+1.27.2"}`, want: base(nil)},
		{name: "env scalars are taken as written", data: minimal + "env:\n  PORT: 8080\n  ON: true\n  RATIO: 1.50\n  EMPTY:\n  Q: 'x: y'\n  _lower: x\n",
			want: base(func(s *Spec) {
				s.Env = map[string]string{"PORT": "8080", "ON": "true", "RATIO": "1.50", "EMPTY": "", "Q": "x: y", "_lower": "x"}
			})},
		{name: "version kept as written", data: "recipe: r\nversion: 1.10\n", want: base(func(s *Spec) { s.Recipe = "r"; s.Version = "1.10" })},
		{name: "numeric recipe", data: "recipe: 2048\nversion: v1\n", want: base(func(s *Spec) { s.Recipe = "2048"; s.Version = "v1" })},
		{name: "null values mean unset", data: minimal + "domain:\nttl:\ntimeout:\nenv:\nhealth:\nsuspend:\ntier:\n", want: base(nil)},
		{name: "empty lists and maps", data: minimal + "env: {}\nhealth: []\n", want: base(nil)},
		{name: "explicit install tier and suspend", data: minimal + "tier: install\nsuspend: true\n", want: base(func(s *Spec) { s.Suspend = true })},
		{name: "anchors and aliases", data: "recipe: &r custom-html\nversion: 1.7.1+1.27.2\nenv:\n  A: *r\nhealth:\n  - &p {http: \"http://{domain}:8080/x\", ok: [200, 204]}\n  - *p\n",
			want: base(func(s *Spec) {
				s.Env = map[string]string{"A": "custom-html"}
				p := Probe{HTTP: "http://{domain}:8080/x", OK: []int{200, 204}}
				s.Health = []Probe{p, p}
			})},
		{name: "byte order mark and comments", data: "\xef\xbb\xbf# CI job 42\n" + minimal + "# end\n", want: base(nil)},
		{name: "explicit document markers", data: "---\n" + minimal + "...\n", want: base(nil)},
		{name: "tcp probe with domain", data: minimal + "health:\n  - tcp: '{domain}:443'\n    stable: 0\n",
			want: base(func(s *Spec) { s.Health = []Probe{{TCP: "{domain}:443"}} })},
		{name: "ipv6 tcp probe", data: minimal + "health:\n  - tcp: '[::1]:80'\n", want: base(func(s *Spec) { s.Health = []Probe{{TCP: "[::1]:80"}} })},
		{name: "backup tier with everything", data: minimal + `tier: backup
backup:
  schedule: "@every 24h"
  keep: 7
  requestedAt: "2026-12-01T10:00:00Z"
  restore: {requestedAt: "2026-12-01T11:00:00Z", id: 20261201T100000.000Z}
  checks:
    beforeBackup:  [{service: app, run: "echo m1 > /data/marker"}]
    beforeRestore: [{service: app, run: "rm /data/marker"}]
    afterRestore:  [{service: app, run: "grep -qx m1 /data/marker"}]
`, want: base(func(s *Spec) {
			s.Tier = TierBackup
			s.Backup = &Backup{Schedule: "@every 24h", Keep: 7, RequestedAt: "2026-12-01T10:00:00Z",
				Restore: &RestoreRequest{RequestedAt: "2026-12-01T11:00:00Z", ID: "20261201T100000.000Z"},
				Checks: BackupChecks{
					BeforeBackup:  []Check{{Service: "app", Run: "echo m1 > /data/marker"}},
					BeforeRestore: []Check{{Service: "app", Run: "rm /data/marker"}},
					AfterRestore:  []Check{{Service: "app", Run: "grep -qx m1 /data/marker"}},
				}}
		})},
		{name: "source and ref instead of version", data: "recipe: custom-html\nsource: https://git.example.org/me/custom-html.git\nref: refs/pull/123/head\n",
			want: base(func(s *Spec) {
				s.Version = ""
				s.Source = "https://git.example.org/me/custom-html.git"
				s.Ref = "refs/pull/123/head"
			})},
		{name: "source with a version", data: minimal + "source: git@git.example.org:me/custom-html.git\n",
			want: base(func(s *Spec) { s.Source = "git@git.example.org:me/custom-html.git" })},
		{name: "backup cron line", data: minimal + "backup: {schedule: '30 3 * * *'}\n", want: base(func(s *Spec) { s.Backup = &Backup{Schedule: "30 3 * * *"} })},
		{name: "backup every 5s", data: minimal + "backup: {schedule: '@every 5s'}\n", want: base(func(s *Spec) { s.Backup = &Backup{Schedule: "@every 5s"} })},
		{name: "45-character stack", app: "a", data: minimal + "domain: " + strings.Repeat("a", 33) + ".example.org\n",
			want: base(func(s *Spec) { s.Domain = strings.Repeat("a", 33) + ".example.org" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file, app, d := tt.file, tt.app, tt.d
			if file == "" {
				file = "specs/a.yml"
			}
			if app == "" {
				app = "a"
			}
			if d == (Defaults{}) && tt.name != "no domain suffix" {
				d = testDefaults
			}
			got, err := Parse(file, app, []byte(tt.data), d)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	long := strings.Repeat("a", 64)
	tests := []struct {
		name string
		file string
		app  string
		data string
		line int      // line of the first error; 0: the message has no line
		want []string // substrings of the error
	}{
		{name: "empty", data: "", want: []string{"empty"}},
		{name: "whitespace only", data: " \n\n\t\n", want: []string{"empty"}},
		{name: "comments only", data: "# nothing\n", want: []string{"only comments"}},
		{name: "document marker only", data: "---\n", want: []string{"no content"}},
		{name: "not yaml", data: "recipe: x\nversion: [1,\n", line: 2, want: []string{"not valid YAML"}},
		{name: "not yaml, no line from yaml", data: "recipe: x: y\n", want: []string{"not valid YAML", "mapping values"}},
		{name: "tab indentation", data: "env:\n\tA: b\n", line: 2, want: []string{"not valid YAML"}},
		{name: "binary junk", data: "recipe: \xff\n", want: []string{"not valid YAML"}},
		{name: "a list", data: "- recipe: x\n- version: y\n", line: 1, want: []string{"is a list", "mapping"}},
		{name: "a scalar", data: "custom-html\n", line: 1, want: []string{"single value", "mapping"}},
		{name: "json array", file: "specs/a.json", data: "[1]", line: 1, want: []string{"is a list"}},
		{name: "bad json", file: "specs/a.json", data: "{\n  \"recipe\": \"x\",\n}\n", line: 3, want: []string{"not valid JSON"}},
		{name: "truncated json", file: "specs/a.json", data: "{\n  \"recipe\": \"x\",\n", line: 3, want: []string{"not valid JSON"}},
		{name: "two documents", data: minimal + "---\nrecipe: y\n", line: 3, want: []string{"more than one YAML document"}},
		{name: "unknown field", data: minimal + "\n\nfoo: 1\n", line: 5, want: []string{`field "foo" is not a spec field (known: recipe, version, source, ref, tier, upgradeFrom, domain, env, timeout, ttl, minReady, suspend, health, backup, overlays)`}},
		{name: "unknown field in json", file: "specs/a.json", data: "{\"recipe\": \"x\",\n \"version\": \"1\",\n \"replicas\": 2}", line: 3, want: []string{`field "replicas" is not a spec field`}},
		{name: "misspelt field", data: minimal + "upgrade_from: 1.0.0\n", line: 3, want: []string{`field "upgrade_from"`, `did you mean "upgradeFrom"?`}},
		{name: "unknown probe field", data: minimal + "health:\n  - http: http://x/\n    path: /\n", line: 5, want: []string{`field "path" is not a probe field (known: http, tcp, ok, stable)`}},
		{name: "duplicate field", data: minimal + "recipe: other\n", line: 3, want: []string{`field "recipe" is set twice (first on line 1)`}},
		{name: "duplicate json field", file: "specs/a.json", data: "{\"recipe\": \"x\", \"version\": \"1\",\n \"version\": \"2\"}", line: 2, want: []string{`"version" is set twice`}},
		{name: "merge key", data: "x: &x {recipe: r}\n<<: *x\n", line: 1, want: []string{`"x" is not a spec field`}},
		{name: "merge key alone", data: "<<: {recipe: r}\nversion: 1\n", line: 1, want: []string{"merge keys"}},
		{name: "mapping as a key", data: minimal + "? {a: 1}\n: x\n", line: 3, want: []string{"field name must be a word"}},
		{name: "recipe missing", data: "version: 1\n", want: []string{`field "recipe" is required`}},
		{name: "recipe empty", data: "recipe: ''\nversion: 1\n", line: 1, want: []string{`field "recipe" is required`}},
		{name: "recipe path", data: "recipe: ../x\nversion: 1\n", line: 1, want: []string{`recipe "../x" is not a plain folder name`}},
		{name: "recipe with slash", data: "recipe: a/b\nversion: 1\n", line: 1, want: []string{`recipe "a/b"`}},
		{name: "recipe hidden", data: "recipe: .git\nversion: 1\n", line: 1, want: []string{`recipe ".git"`}},
		{name: "recipe dotdot inside", data: "recipe: a..b\nversion: 1\n", line: 1, want: []string{`recipe "a..b"`}},
		{name: "recipe is a list", data: "recipe: [a]\nversion: 1\n", line: 1, want: []string{`field "recipe" must be a string, not a list`}},
		{name: "version missing", data: "recipe: r\n", want: []string{`field "version" is required`}},
		{name: "version with space", data: "recipe: r\nversion: 1.0 beta\n", line: 2, want: []string{`version "1.0 beta" contains whitespace`}},
		{name: "unknown tier", data: minimal + "tier: canary\n", line: 3, want: []string{`tier "canary" is not a tier: use install (the default), upgrade or backup`}},
		{name: "ref without source", data: "recipe: r\nref: main\n", line: 2, want: []string{"ref needs source"}},
		{name: "ref and version", data: "recipe: r\nversion: 1.0.0\nsource: https://git.example.org/r.git\nref: main\n", line: 2, want: []string{"version and ref both name"}},
		{name: "source not a git URL", data: minimal + "source: ftp://x/r\n", line: 3, want: []string{`source "ftp://x/r" is not a git URL`}},
		{name: "ref with dots", data: "recipe: r\nsource: https://x/r.git\nref: a..b\n", line: 3, want: []string{"is not a git ref"}},
		{name: "backup schedule not a schedule", data: minimal + "backup:\n  schedule: every day\n", line: 4, want: []string{`backup.schedule "every day": not a schedule`}},
		{name: "backup schedule that never comes", data: minimal + "backup:\n  schedule: '0 0 30 2 *'\n", line: 4, want: []string{"never comes"}},
		{name: "backup schedule every 0s", data: minimal + "backup:\n  schedule: '@every 0s'\n", line: 4, want: []string{"@every 0s: the interval must be whole seconds, at least 1s"}},
		{name: "backup schedule every -24h", data: minimal + "backup:\n  schedule: '@every -24h'\n", line: 4, want: []string{"at least 1s"}},
		{name: "backup schedule every 1ms", data: minimal + "backup:\n  schedule: '@every 1ms'\n", line: 4, want: []string{"at least 1s"}},
		{name: "backup schedule every 1.5s", data: minimal + "backup:\n  schedule: '@every 1.5s'\n", line: 4, want: []string{"whole seconds"}},
		{name: "backup schedule in a time zone", data: minimal + "backup:\n  schedule: 'CRON_TZ=Europe/Berlin 30 3 * * *'\n", line: 4, want: []string{"schedules are in UTC"}},
		{name: "backup keep negative", data: minimal + "backup:\n  keep: -1\n", line: 4, want: []string{"backup.keep must not be negative"}},
		{name: "backup unknown field", data: minimal + "backup:\n  retain: 3\n", line: 4, want: []string{`field "retain" is not a backup field`}},
		{name: "backup check without run", data: minimal + "backup:\n  checks:\n    afterRestore: [{service: app}]\n", line: 5, want: []string{"backup.checks.afterRestore[0] needs both service"}},
		{name: "backup restore id malformed", data: minimal + "backup:\n  restore: {requestedAt: x, id: latest}\n", line: 4, want: []string{`backup.restore.id "latest" is not a backup ID`}},
		{name: "backup a list", data: minimal + "backup: [a]\n", line: 3, want: []string{`field "backup" must be a mapping`}},
		{name: "upgradeFrom without upgrade tier", data: minimal + "upgradeFrom: 1.0.0\n", line: 3, want: []string{"upgradeFrom is only used with tier: upgrade"}},
		{name: "upgradeFrom with install tier", data: minimal + "tier: install\nupgradeFrom: 1.0.0\n", line: 4, want: []string{"upgradeFrom is only used with tier: upgrade"}},
		{name: "domain uppercase", data: minimal + "domain: App.Example.org\n", line: 3, want: []string{"not a DNS name", "uppercase", "lowercase"}},
		{name: "domain underscore", data: minimal + "domain: a_b.example.org\n", line: 3, want: []string{"not a DNS name", `"a_b"`}},
		{name: "domain leading hyphen", data: minimal + "domain: -a.example.org\n", line: 3, want: []string{"not a DNS name", `"-a"`}},
		{name: "domain trailing hyphen", data: minimal + "domain: a-.example.org\n", line: 3, want: []string{"not a DNS name"}},
		{name: "domain trailing dot", data: minimal + "domain: a.example.org.\n", line: 3, want: []string{"trailing dot"}},
		{name: "domain empty label", data: minimal + "domain: a..org\n", line: 3, want: []string{"empty label"}},
		{name: "domain label too long", data: minimal + "domain: " + long + ".org\n", line: 3, want: []string{"63"}},
		{name: "domain too long", data: minimal + "domain: " + strings.Repeat("abcdefghi.", 26) + "org\n", line: 3, want: []string{"253"}},
		{name: "domain with port", data: minimal + "domain: a.org:443\n", line: 3, want: []string{"not a DNS name"}},
		{name: "stack name too long", data: minimal + "domain: " + strings.Repeat("a", 34) + ".example.org\n", line: 3, want: []string{"stack name", "46 characters", "limit is 45", "shorter domain"}},
		{name: "default domain stack too long", app: "a-rather-long-app-name-for-ci-xy", data: minimal, want: []string{"default domain", "limit is 45"}},
		{name: "bad app name", app: "Bad_Name", file: "specs/Bad_Name.yml", data: minimal, want: []string{`app name "Bad_Name" is not valid`, "rename the spec file"}},
		{name: "env not a mapping", data: minimal + "env:\n  - A=b\n", line: 4, want: []string{`"env" must be a mapping`}},
		{name: "env key with hyphen", data: minimal + "env:\n  A-B: x\n", line: 4, want: []string{`env name "A-B" is not a variable name`}},
		{name: "env key with digit first", data: minimal + "env:\n  1A: x\n", line: 4, want: []string{`env name "1A"`}},
		{name: "env key empty", data: minimal + "env:\n  '': x\n", line: 4, want: []string{`env name ""`}},
		{name: "env value a list", data: minimal + "env:\n  A: [1, 2]\n", line: 4, want: []string{`env "A" must be a string, not a list`}},
		{name: "env value a mapping", data: minimal + "env:\n  A:\n    b: c\n", line: 5, want: []string{`env "A" must be a string, not a mapping`}},
		{name: "env duplicate", data: minimal + "env:\n  A: 1\n  A: 2\n", line: 5, want: []string{`env "A" is set twice`}},
		{name: "timeout zero", data: minimal + "timeout: 0s\n", line: 3, want: []string{"timeout must be greater than zero"}},
		{name: "timeout negative", data: minimal + "timeout: -5m\n", line: 3, want: []string{"timeout must be greater than zero"}},
		{name: "timeout without unit", data: minimal + "timeout: 600\n", line: 3, want: []string{`"600" has no unit`, "600s"}},
		{name: "timeout not a duration", data: minimal + "timeout: soon\n", line: 3, want: []string{`"soon" is not a duration`}},
		{name: "timeout a mapping", data: minimal + "timeout: {m: 5}\n", line: 3, want: []string{`"timeout" must be a duration`}},
		{name: "ttl negative", data: minimal + "ttl: -1h\n", line: 3, want: []string{"ttl must not be negative"}},
		{name: "minReady negative", data: minimal + "minReady: -1s\n", line: 3, want: []string{"minReady must not be negative", "0s turns"}},
		{name: "minReady not shorter than timeout", data: minimal + "minReady: 2m\ntimeout: 2m\n", line: 3, want: []string{"minReady 2m0s is not shorter than timeout 2m0s"}},
		{name: "minReady without unit", data: minimal + "minReady: 5\n", line: 3, want: []string{`"5" has no unit`}},
		{name: "suspend a string", data: minimal + "suspend: 'true'\n", line: 3, want: []string{`"suspend" must be true or false`}},
		{name: "suspend yes", data: minimal + "suspend: yes\n", line: 3, want: []string{`"suspend" must be true or false`}},
		{name: "health a mapping", data: minimal + "health:\n  http: http://x/\n", line: 4, want: []string{`"health" must be a list of probes`}},
		{name: "probe a string", data: minimal + "health:\n  - http://x/\n", line: 4, want: []string{"health[0] must be a mapping"}},
		{name: "probe with both", data: minimal + "health:\n  - http: http://x/\n    tcp: x:1\n", line: 4, want: []string{"health[0] sets both http and tcp"}},
		{name: "probe with neither", data: minimal + "health:\n  - stable: 2\n", line: 4, want: []string{"health[0] sets neither http nor tcp"}},
		{name: "http not http", data: minimal + "health:\n  - http: ftp://x/\n", line: 4, want: []string{`health[0].http "ftp://x/" must start with http:// or https://`}},
		{name: "http no scheme", data: minimal + "health:\n  - http: '{domain}/'\n", line: 4, want: []string{"must start with http://"}},
		{name: "http no host", data: minimal + "health:\n  - http: http:///x\n", line: 4, want: []string{"has no host"}},
		{name: "http other placeholder", data: minimal + "health:\n  - http: http://{app}/\n", line: 4, want: []string{"placeholder other than {domain}"}},
		{name: "http with space", data: minimal + "health:\n  - http: http://x/a b\n", line: 4, want: []string{"whitespace"}},
		{name: "second probe bad", data: minimal + "health:\n  - tcp: x:1\n  - tcp: x\n", line: 5, want: []string{`health[1].tcp "x" must be host:port`}},
		{name: "tcp port out of range", data: minimal + "health:\n  - tcp: x:70000\n", line: 4, want: []string{"valid port"}},
		{name: "tcp port name", data: minimal + "health:\n  - tcp: x:http\n", line: 4, want: []string{"valid port"}},
		{name: "tcp no host", data: minimal + "health:\n  - tcp: :80\n", line: 4, want: []string{"host:port"}},
		{name: "ok code out of range", data: minimal + "health:\n  - http: http://x/\n    ok: [200, 600]\n", line: 5, want: []string{`"600" is not an HTTP status code (100-599)`}},
		{name: "ok code not a number", data: minimal + "health:\n  - http: http://x/\n    ok: [OK]\n", line: 5, want: []string{`"OK" is not an HTTP status code`}},
		{name: "ok not a list", data: minimal + "health:\n  - http: http://x/\n    ok: 200\n", line: 5, want: []string{"must be a list of HTTP status codes"}},
		{name: "ok on tcp", data: minimal + "health:\n  - tcp: x:1\n    ok: [200]\n", line: 5, want: []string{"health[0].ok only applies to http probes"}},
		{name: "stable negative", data: minimal + "health:\n  - tcp: x:1\n    stable: -1\n", line: 5, want: []string{"health[0].stable must not be negative"}},
		{name: "stable not a number", data: minimal + "health:\n  - tcp: x:1\n    stable: twice\n", line: 5, want: []string{`"health[0].stable" must be a whole number`}},
		{name: "stable overflow", data: minimal + "health:\n  - tcp: x:1\n    stable: 99999999999999999999999\n", line: 5, want: []string{"whole number"}},
		{name: "every problem reported", data: "recipe: ../x\nversion: a b\nfoo: 1\n", line: 3,
			want: []string{"line 1: recipe", "line 2: version", `line 3: field "foo"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file, app := tt.file, tt.app
			if file == "" {
				file = "specs/a.yml"
			}
			if app == "" {
				app = "a"
			}
			s, err := Parse(file, app, []byte(tt.data), testDefaults)
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", s)
			}
			if s != nil {
				t.Errorf("Parse returned a spec with an error: %+v", s)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, file+": ") {
				t.Errorf("error does not start with the file name %q: %s", file, msg)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error is not a *FieldError: %T %v", err, err)
			}
			if tt.line > 0 {
				if fe.Line != tt.line {
					t.Errorf("line = %d, want %d: %s", fe.Line, tt.line, msg)
				}
			} else if strings.Contains(msg, ": line ") {
				t.Errorf("error names a line but none is expected: %s", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q\n does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestParseFieldErrorNamesField(t *testing.T) {
	_, err := Parse("specs/a.yml", "a", []byte(minimal+"env:\n  A-B: x\n"), testDefaults)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "env.A-B" || fe.Line != 4 || fe.File != "specs/a.yml" {
		t.Fatalf("got %#v", fe)
	}
}

func TestAppName(t *testing.T) {
	tests := []struct {
		file string
		want string
		ok   bool
	}{
		{"a.yml", "a", true},
		{"ch-1a2b3c.yaml", "ch-1a2b3c", true},
		{"specs/x.json", "x", true},
		{"/abs/path/web.yml", "web", true},
		{"Bad_Name.yml", "Bad_Name", true},
		{"a.b.yml", "a.b", true},
		{".a.yml", "", false},
		{".yml", "", false},
		{"a.yml.tmp", "", false},
		{"a.yml~", "", false},
		{"a.yml.swp", "", false},
		{".a.yml.swp", "", false},
		{"a.txt", "", false},
		{"README.md", "", false},
		{"a", "", false},
		{"a.YML", "", false},
		{"a.yml.bak", "", false},
	}
	for _, tt := range tests {
		got, ok := AppName(tt.file)
		if got != tt.want || ok != tt.ok {
			t.Errorf("AppName(%q) = %q, %v; want %q, %v", tt.file, got, ok, tt.want, tt.ok)
		}
	}
}

func TestValidateAppName(t *testing.T) {
	for _, ok := range []string{"a", "0", "ch-1a2b3c", "a-b", strings.Repeat("a", 32), "1x"} {
		if err := ValidateAppName(ok); err != nil {
			t.Errorf("ValidateAppName(%q) = %v", ok, err)
		}
	}
	for name, want := range map[string]string{
		"":                      "empty",
		strings.Repeat("a", 33): "33 characters",
		"Bad":                   "uppercase",
		"-a":                    `starts or ends with "-"`,
		"a-":                    `starts or ends with "-"`,
		"a_b":                   "characters other than",
		"a.b":                   "characters other than",
	} {
		err := ValidateAppName(name)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "rename") {
			t.Errorf("ValidateAppName(%q) = %v; want it to say %q and what to do", name, err, want)
		}
	}
}

func TestStackName(t *testing.T) {
	tests := []struct {
		domain, want string
		err          bool
	}{
		{"ch-1a2b3c.ci.example.org", "ch-1a2b3c_ci_example_org", false},
		{"a", "a", false},
		{strings.Repeat("a", 45), strings.Repeat("a", 45), false},
		{strings.Repeat("a", 34) + ".example.org", "", true},
	}
	for _, tt := range tests {
		got, err := StackName(tt.domain)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("StackName(%q) = %q, %v", tt.domain, got, err)
		}
		if err != nil && !strings.Contains(err.Error(), "45") {
			t.Errorf("StackName error does not give the limit: %v", err)
		}
	}
}

func TestGeneration(t *testing.T) {
	if got, want := Generation([]byte("abc")), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Errorf("Generation = %s, want %s", got, want)
	}
}

func TestDurationJSONAndYAML(t *testing.T) {
	s := base(func(s *Spec) { s.TTL = dur("1h30m") })
	b, err := jsonMarshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"timeout":"10m0s"`) || !strings.Contains(string(b), `"ttl":"1h30m0s"`) {
		t.Errorf("durations not written as strings: %s", b)
	}
	var back Spec
	if err := jsonUnmarshal(b, &back); err != nil || !reflect.DeepEqual(&back, s) {
		t.Errorf("json round trip: %v %+v", err, back)
	}
	y, err := yamlMarshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var yback Spec
	if err := yamlUnmarshal(y, &yback); err != nil || !reflect.DeepEqual(&yback, s) {
		t.Errorf("yaml round trip: %v %+v\n%s", err, yback, y)
	}
	var d Duration
	if err := jsonUnmarshal([]byte(`600`), &d); err == nil {
		t.Error("a bare JSON number was accepted as a duration")
	}
}
