package diskimage

import (
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// tempRE matches the names of Prepare's temporaries (os.CreateTemp puts
// decimal digits where the pattern has its "*"): ".NAME.keyholder-tmp-N"
// for outputs, ".NAME.manifest.keyholder-tmp-N" for manifests.
var tempRE = regexp.MustCompile(`^\..+\.keyholder-tmp-[0-9]+$`)

// removeStaleTemps removes, from dir, the temporaries that runs killed
// before they finished left behind: regular files named like Prepare's
// temporaries, last modified more than staleAfter before start, and (where
// the platform can tell) not locked by a live run. Finished outputs never
// carry a temporary's name, so they are never candidates. It returns the
// names removed.
func removeStaleTemps(dir string, start time.Time) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range ents {
		if !e.Type().IsRegular() || !tempRE.MatchString(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if removeIfStale(p, start) {
			removed = append(removed, e.Name())
		}
	}
	return removed
}

func removeIfStale(p string, start time.Time) bool {
	f, err := os.OpenFile(p, os.O_RDONLY|oNoFollow, 0)
	if err != nil {
		return false
	}
	defer f.Close() // after the removal: the lock taken is held until then
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || !st.ModTime().Before(start.Add(-staleAfter)) {
		return false
	}
	if !tempAbandoned(f) {
		return false // a live run is writing it
	}
	// Remove what was checked, not whatever took its name meanwhile.
	if lst, err := os.Lstat(p); err != nil || !os.SameFile(st, lst) {
		return false
	}
	return os.Remove(p) == nil
}
