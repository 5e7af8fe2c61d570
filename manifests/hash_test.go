package manifests

import (
	"context"
	"testing"

	"github.com/docker/docker/api/types/swarm"
)

func hashFixture() swarm.ServiceSpec {
	return swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: "s_app", Labels: map[string]string{"b": "2", "a": "1"}},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{
			Image:   "nginx:1",
			Env:     []string{"A=1"},
			Labels:  map[string]string{"z": "26", "y": "25"},
			Secrets: []*swarm.SecretReference{{SecretID: "id-1", SecretName: "s_pw_v1", File: &swarm.SecretReferenceFileTarget{Name: "pw"}}},
			Configs: []*swarm.ConfigReference{{ConfigID: "id-2", ConfigName: "s_conf_v1", File: &swarm.ConfigReferenceFileTarget{Name: "/conf"}}},
		}},
	}
}

func TestSpecHash(t *testing.T) {
	base := SpecHash(hashFixture())
	for range 20 { // map iteration order must not matter
		if h := SpecHash(hashFixture()); h != base {
			t.Fatalf("hash not stable: %s then %s", base, h)
		}
	}
	tests := []struct {
		name   string
		change func(*swarm.ServiceSpec)
		same   bool
	}{
		{"other secret ID", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Secrets[0].SecretID = "id-9" }, true},
		{"other config ID", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Configs[0].ConfigID = "" }, true},
		{"spec hash label set", func(s *swarm.ServiceSpec) { s.Labels[LabelSpecHash] = "whatever" }, true},
		{"other secret name", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Secrets[0].SecretName = "s_pw_v2" }, false},
		{"other image", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Image = "nginx:2" }, false},
		{"other service label", func(s *swarm.ServiceSpec) { s.Labels["a"] = "x" }, false},
		{"other env", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Env = nil }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := hashFixture()
			tc.change(&s)
			if got := SpecHash(s) == base; got != tc.same {
				t.Errorf("hash equal to the original: %v, want %v", got, tc.same)
			}
		})
	}

	// SpecHash must not modify its argument.
	s := hashFixture()
	s.Labels[LabelSpecHash] = "keep"
	SpecHash(s)
	if s.Labels[LabelSpecHash] != "keep" || s.TaskTemplate.ContainerSpec.Secrets[0].SecretID != "id-1" ||
		s.TaskTemplate.ContainerSpec.Configs[0].ConfigID != "id-2" {
		t.Errorf("SpecHash modified its argument: %+v", s)
	}
}

// fixedResolver answers every name with the same ID, like an engine whose objects were recreated.
type fixedResolver string

func (f fixedResolver) SecretList(ctx context.Context, o swarm.SecretListOptions) ([]swarm.Secret, error) {
	out, _ := PlaceholderResolver().SecretList(ctx, o)
	for i := range out {
		out[i].ID = string(f) + out[i].ID
	}
	return out, nil
}

func (f fixedResolver) ConfigList(ctx context.Context, o swarm.ConfigListOptions) ([]swarm.Config, error) {
	out, _ := PlaceholderResolver().ConfigList(ctx, o)
	for i := range out {
		out[i].ID = string(f) + out[i].ID
	}
	return out, nil
}

func TestServicesHashIndependentOfIDs(t *testing.T) {
	f := newFixture(t)
	r, err := f.render(t, f.tagNew, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := r.Services(context.Background(), fixedResolver("engine-a-"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Services(context.Background(), fixedResolver("engine-b-"))
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range a {
		if len(s.TaskTemplate.ContainerSpec.Configs) > 0 &&
			s.TaskTemplate.ContainerSpec.Configs[0].ConfigID == b[name].TaskTemplate.ContainerSpec.Configs[0].ConfigID {
			t.Fatalf("%s: the resolvers gave equal IDs; the test proves nothing", name)
		}
		if s.Labels[LabelSpecHash] == "" || s.Labels[LabelSpecHash] != b[name].Labels[LabelSpecHash] {
			t.Errorf("%s: spec hash %q vs %q: depends on IDs", name, s.Labels[LabelSpecHash], b[name].Labels[LabelSpecHash])
		}
	}

	// A second render of the same input gives the same hashes: an unchanged spec updates nothing.
	again, err := f.render(t, f.tagNew, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := again.Services(context.Background(), fixedResolver("engine-c-"))
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range a {
		if d[name].Labels[LabelSpecHash] != s.Labels[LabelSpecHash] {
			t.Errorf("%s: hash differs between two renders of the same input", name)
		}
	}

	// A different spec env changes the app's hash (the env is part of its spec).
	r2, err := f.render(t, f.tagNew, map[string]string{"GREETING": "hi"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := r2.Services(context.Background(), fixedResolver("engine-a-"))
	if err != nil {
		t.Fatal(err)
	}
	if c["demo_example_org_app"].Labels[LabelSpecHash] == a["demo_example_org_app"].Labels[LabelSpecHash] {
		t.Error("app hash unchanged by an env change")
	}
	if c["demo_example_org_worker"].Labels[LabelSpecHash] != a["demo_example_org_worker"].Labels[LabelSpecHash] {
		t.Error("worker hash changed though the worker did not")
	}
}
