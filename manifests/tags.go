package manifests

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// Tags lists the release tags of a recipe, oldest first by semver order of the part before "+"
// (Co-op Cloud tags are "<recipe semver>+<upstream version>"). Tags whose part before "+" is not
// a version (e.g. "latest") are not release tags and are left out.
func Tags(recipesDir, recipe string) ([]string, error) {
	var tags []string
	err := repos.with(context.Background(), recipesDir, recipe, func(repo *git.Repository, _ string) error {
		var err error
		if tags, err = releaseTags(repo); err != nil {
			return fmt.Errorf("list tags of %s: %w", recipe, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return tags, nil
}

// PreviousTag returns the release tag just before version: the upgrade tier's default
// upgradeFrom. version need not be a tag itself, but must look like a release version.
func PreviousTag(recipesDir, recipe, version string) (string, error) {
	v, ok := parseRelease(version)
	if !ok {
		return "", fmt.Errorf("%w: %s@%s is not a release version, so there is no previous tag to upgrade from: set upgradeFrom",
			ErrInput, recipe, version)
	}
	tags, err := Tags(recipesDir, recipe)
	if err != nil {
		return "", err
	}
	prev := ""
	for _, t := range tags { // oldest first: the last one below version wins
		tv, _ := parseRelease(t)
		if compareRelease(tv, v) < 0 {
			prev = t
		}
	}
	if prev == "" {
		return "", fmt.Errorf("%w: %s has no release tag before %s: set upgradeFrom, or use the install tier",
			ErrInput, recipe, version)
	}
	return prev, nil
}

func releaseTags(repo *git.Repository) ([]string, error) {
	iter, err := repo.Tags()
	if err != nil {
		return nil, err
	}
	defer iter.Close()
	var tags []string
	err = iter.ForEach(func(ref *plumbing.Reference) error {
		name := ref.Name().Short()
		if _, ok := parseRelease(name); ok {
			tags = append(tags, name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(tags, func(a, b string) int {
		va, _ := parseRelease(a)
		vb, _ := parseRelease(b)
		return compareRelease(va, vb)
	})
	return tags, nil
}

// release is a parsed "X.Y.Z[-pre][+build]" version.
type release struct {
	nums  [3]int
	pre   []string
	build string
	raw   string
}

// parseRelease accepts 1 to 3 numeric components (missing ones are 0) and an optional leading
// "v", a "-prerelease" and a "+build" part.
func parseRelease(s string) (release, bool) {
	r := release{raw: s}
	core, build, _ := strings.Cut(s, "+")
	r.build = build
	core, pre, hasPre := strings.Cut(core, "-")
	if hasPre {
		if pre == "" {
			return r, false
		}
		r.pre = strings.Split(pre, ".")
	}
	core = strings.TrimPrefix(core, "v")
	parts := strings.Split(core, ".")
	if len(parts) == 0 || len(parts) > 3 {
		return r, false
	}
	for i, p := range parts {
		if p == "" || strings.TrimLeft(p, "0123456789") != "" || len(p) > 9 {
			return r, false
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return r, false
		}
		r.nums[i] = n
	}
	return r, true
}

// compareRelease orders by semver precedence of the part before "+", then by the build part
// (naturally: numbers as numbers), then by the raw string, so that the order is total.
func compareRelease(a, b release) int {
	for i := range a.nums {
		if c := a.nums[i] - b.nums[i]; c != 0 {
			return sign(c)
		}
	}
	if c := comparePre(a.pre, b.pre); c != 0 {
		return c
	}
	if c := naturalCompare(a.build, b.build); c != 0 {
		return c
	}
	return strings.Compare(a.raw, b.raw)
}

// comparePre implements semver's pre-release precedence: none > some; identifiers compared
// numerically when both are numbers, numbers before words, shorter list first on a tie.
func comparePre(a, b []string) int {
	switch {
	case len(a) == 0 && len(b) == 0:
		return 0
	case len(a) == 0:
		return 1
	case len(b) == 0:
		return -1
	}
	for i := 0; i < len(a) && i < len(b); i++ {
		an, aErr := strconv.Atoi(a[i])
		bn, bErr := strconv.Atoi(b[i])
		switch {
		case aErr == nil && bErr == nil:
			if an != bn {
				return sign(an - bn)
			}
		case aErr == nil:
			return -1
		case bErr == nil:
			return 1
		default:
			if c := strings.Compare(a[i], b[i]); c != 0 {
				return c
			}
		}
	}
	return sign(len(a) - len(b))
}

// naturalCompare compares strings chunk by chunk, digit runs by value ("1.27.10" > "1.27.9").
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		ca, ra := chunk(a)
		cb, rb := chunk(b)
		if isDigits(ca) && isDigits(cb) {
			ta, tb := strings.TrimLeft(ca, "0"), strings.TrimLeft(cb, "0")
			if len(ta) != len(tb) {
				return sign(len(ta) - len(tb))
			}
			if c := strings.Compare(ta, tb); c != 0 {
				return c
			}
		} else if c := strings.Compare(ca, cb); c != 0 {
			return c
		}
		a, b = ra, rb
	}
	return sign(len(a) - len(b))
}

func chunk(s string) (string, string) {
	digit := s[0] >= '0' && s[0] <= '9'
	i := 1
	for i < len(s) && (s[i] >= '0' && s[i] <= '9') == digit {
		i++
	}
	return s[:i], s[i:]
}

func isDigits(s string) bool { return s != "" && s[0] >= '0' && s[0] <= '9' }

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
