package manifests

import (
	"strings"
	"testing"
)

func TestFingerprint(t *testing.T) {
	label, err := NewFingerprint([]byte("hunter2hunter2"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(label, "hunter2") {
		t.Fatalf("the label %q carries the value", label)
	}
	f, err := ParseFingerprint(label)
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]bool{"hunter2hunter2": true, "hunter2hunter3": false, "hunter2": false, "": false} {
		if got := f.Matches([]byte(in)); got != want {
			t.Errorf("Matches(%q) = %v, want %v", in, got, want)
		}
	}
	other, _ := NewFingerprint([]byte("hunter2hunter2"))
	if other == label {
		t.Error("two fingerprints of one value are equal: the salt is not fresh")
	}
	for _, bad := range []string{"", "md5:1:00:00", "sha256:x:00:" + strings.Repeat("0", 64), "sha256:3:zz:" + strings.Repeat("0", 64), "sha256:3:00:00"} {
		if _, err := ParseFingerprint(bad); err == nil {
			t.Errorf("ParseFingerprint(%q) took it", bad)
		}
	}
}
