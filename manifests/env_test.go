package manifests

import (
	"maps"
	"strings"
	"testing"
)

func TestParseEnvFile(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		want     map[string]string
		wantMods map[string]map[string]string
		wantErr  string
	}{
		{
			name: "comments blank lines and export",
			src:  "# a comment\n\nA=1\nexport B=2\n  export\tC=3\n#D=4\n # E=5\n",
			want: map[string]string{"A": "1", "B": "2", "C": "3"},
		},
		{
			name: "quotes",
			src:  "A='single $B # not a comment'\nB=\"double\\n\\\"x\\\" \\$HOME\"\nC=\"\"\nD=''\nE=\"multi\nline\"\n",
			want: map[string]string{"A": "single $B # not a comment", "B": "double\n\"x\" $HOME", "C": "", "D": "", "E": "multi\nline"},
		},
		{
			name: "inline comments and trimming",
			src:  "A=value # comment\nB=value#not-comment\nC = spaced  \nD= # only a comment\nE=\nF=a\tb\t# tab comment\n",
			want: map[string]string{"A": "value", "B": "value#not-comment", "C": "spaced", "D": "", "E": "", "F": "a\tb"},
		},
		{
			name: "expansion of earlier values",
			src:  "A=x\nB=$A-y\nC=${A}z\nD=\"$B and ${C}\"\nE='$A'\nF=$UNSET.\nG=${UNSET:-def}\nH=${A:-def}\nI=\\$A\nJ=$\nK=${A\n",
			want: map[string]string{"A": "x", "B": "x-y", "C": "xz", "D": "x-y and xz", "E": "$A", "F": ".", "G": "def", "H": "x", "I": "$A", "J": "$", "K": "${A"},
		},
		{
			name: "self reference appends",
			src:  "COMPOSE_FILE=\"compose.yml\"\nCOMPOSE_FILE=\"$COMPOSE_FILE:compose.postgres.yml\"\n#COMPOSE_FILE=\"$COMPOSE_FILE:compose.mail.yml\"\nCOMPOSE_FILE=\"${COMPOSE_FILE}:compose.x.yml\"\n",
			want: map[string]string{"COMPOSE_FILE": "compose.yml:compose.postgres.yml:compose.x.yml"},
		},
		{
			name: "modifiers",
			src: "SECRET_A_VERSION=v1 # length=128\nSECRET_B_VERSION=v2 # charset=special,safe length=9 generate=false\n" +
				"SECRET_C_VERSION=\"v3\" # length=5\n#SECRET_D_VERSION=v1 # length=12\n# SECRET_E_VERSION=v1 # generate=false\n",
			want: map[string]string{"SECRET_A_VERSION": "v1", "SECRET_B_VERSION": "v2", "SECRET_C_VERSION": "v3"},
			wantMods: map[string]map[string]string{
				"SECRET_A_VERSION": {"length": "128"},
				"SECRET_B_VERSION": {"charset": "special,safe", "length": "9", "generate": "false"},
				"SECRET_C_VERSION": {"length": "5"},
				"SECRET_D_VERSION": {"length": "12"},
				"SECRET_E_VERSION": {"generate": "false"},
			},
		},
		{
			name: "later assignment replaces earlier, modifiers too",
			src:  "SECRET_A_VERSION=v1 # length=64\nSECRET_A_VERSION=v2\n",
			want: map[string]string{"SECRET_A_VERSION": "v2"},
			wantMods: map[string]map[string]string{
				"SECRET_A_VERSION": nil,
			},
		},
		{
			name: "CRLF line ends",
			src:  "A=1\r\nB=\"2\"\r\n",
			want: map[string]string{"A": "1", "B": "2"},
		},
		{name: "no equals sign", src: "A=1\nJUST_A_NAME\n", wantErr: "line 2: expected NAME=value"},
		{name: "bad name", src: "1A=x\n", wantErr: "line 1: \"1A\" is not a variable name"},
		{name: "unterminated quote", src: "A=1\nB=\"open\n", wantErr: "line 2: B: unterminated \" quote"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parseEnvFile(tc.src, nil, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(f.vars, tc.want) {
				t.Errorf("vars = %q\nwant   %q", f.vars, tc.want)
			}
			for name, want := range tc.wantMods {
				if got := f.modifiers(name); !maps.Equal(got, want) {
					t.Errorf("modifiers(%s) = %v, want %v", name, got, want)
				}
			}
		})
	}
}

func TestParseEnvFileErrorsHideValues(t *testing.T) {
	_, err := parseEnvFile("PASSWORD=\"hunter2-secret\n", nil, nil)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v: want an error that does not quote the value", err)
	}
}

func TestBuildEnvPrecedence(t *testing.T) {
	sample := `TYPE=demo
DOMAIN=demo.example.com
STACK_NAME=sample_stack
A=sample
B=sample
C=sample
D=sample
URL=https://${DOMAIN}/
REF=$C
#E=commented
COMPOSE_FILE="compose.yml"
COMPOSE_FILE="$COMPOSE_FILE:compose.extra.yml"
`
	abraSh := `#!/bin/bash
export B=abra
export C=abra
export VERSION_FROM_ABRA=v3
export DERIVED=${B}-x
NOT_EXPORTED=1
export FUNCS_SKIPPED="unterminated
  export INDENTED=yes
foo() { echo hi; }
reset_admin() {
  export B=function
  export PGPASSWORD=$(cat /run/secrets/db_password)
  if [ -n "$X" ]; then
    export IN_IF=1
  fi
}
one() { echo "one line"; } # a comment
two() { echo two; } >&2
export AFTER_ONE_LINE=1
function other {
  cat <<EOF
}
EOF
  export IN_OTHER=1
    }
export AFTER_FUNCS=1
# old_cmd() {
#   export COMMENTED=1
# }
export AFTER_COMMENT=1
report()
{
  awk '{ if ($1) {
    print
  } else {
    export IN_AWK=1
  } }' file
}
export AFTER_AWK=1
`
	spec := map[string]string{"C": "spec", "D": "$literal", "DOMAIN": "spec-cannot-win", "STACK_NAME": "nor-this"}
	env, err := buildEnv(sample, abraSh, spec, "app.example.org", "app_example_org")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"TYPE":              "demo",
		"DOMAIN":            "app.example.org", // DOMAIN and STACK_NAME always win
		"STACK_NAME":        "app_example_org",
		"A":                 "sample", // .env.sample only
		"B":                 "abra",   // abra.sh export beats .env.sample
		"C":                 "spec",   // the spec beats abra.sh
		"D":                 "$literal",
		"URL":               "https://app.example.org/", // references see the real domain
		"REF":               "spec",                     // ... and the spec's values
		"COMPOSE_FILE":      "compose.yml:compose.extra.yml",
		"VERSION_FROM_ABRA": "v3",
		"DERIVED":           "abra-x",
		"AFTER_FUNCS":       "1", // a function's exports are not (B stays abra's), nor an indented one
		"AFTER_ONE_LINE":    "1", // however a one-line function ends
		"AFTER_COMMENT":     "1", // a commented-out function opens none
		"AFTER_AWK":         "1", // braces inside a body do not end it early, nor leave it open
	}
	if !maps.Equal(env.vars, want) {
		t.Errorf("env = %q\nwant  %q", env.vars, want)
	}
}

func TestBuildEnvBadSample(t *testing.T) {
	if _, err := buildEnv("GOOD=1\nBAD LINE\n", "", nil, "d", "s"); err == nil || !strings.Contains(err.Error(), ".env.sample: line 2") {
		t.Fatalf("err = %v, want it to name .env.sample and the line", err)
	}
}

func FuzzEnvFile(f *testing.F) {
	for _, seed := range []string{
		"",
		"A=1\n",
		"export A='x' # c\n",
		"A=\"multi\nline\" # length=3\n",
		"A=$B ${C} ${D:-e} ${F-g} $ ${ \\$ \\",
		"#SECRET_X_VERSION=v1 # length=64 charset=special\n",
		"COMPOSE_FILE=\"$COMPOSE_FILE:compose.x.yml\"\n",
		"A = spaced # comment\r\nB=\"esc \\\" \\n \\\\\"\n",
		"=novalue\n\"\n'\nexport\nexport \n",
		"A='unterminated\n",
		"A=${\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, src string) {
		lookup := func(name string) (string, bool) { return "L" + name, len(name)%2 == 0 }
		file, err := parseEnvFile(src, lookup, lookup)
		if err != nil {
			if file != nil {
				t.Fatal("an error and a result")
			}
			return
		}
		for k := range file.vars {
			if !validEnvName(k) {
				t.Fatalf("accepted name %q", k)
			}
		}
		_ = parseAbraSh(src, lookup, lookup)
	})
}
