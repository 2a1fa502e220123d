package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// trustRecord is one file of the trust store: the approved version of one
// project root's config chain.
type trustRecord struct {
	Root   string     `json:"root"`
	Hash   string     `json:"hash"`
	Files  []string   `json:"files"`
	Policy *policySet `json:"policy"` // the project layer alone, as approved
	Time   time.Time  `json:"time"`
}

// trustRoot is the name trust is recorded under: the root resolved through
// symlinks, so that one checkout reached through two paths is one project.
func trustRoot(root string) string {
	if r, err := filepath.EvalSymlinks(root); err == nil {
		return r
	}
	return root
}

// trustFile is the trust store file for root (already a [trustRoot]).
func trustFile(root string) string {
	sum := sha256.Sum256([]byte(root))
	return filepath.Join(TrustDir(), hex.EncodeToString(sum[:16])+".json")
}

func readTrust(root string) (*trustRecord, error) {
	b, err := os.ReadFile(trustFile(root))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var rec trustRecord
	if err := json.Unmarshal(b, &rec); err != nil || rec.Root != root || rec.Policy == nil {
		return nil, nil // a damaged record trusts nothing
	}
	return &rec, nil
}

func writeTrust(rec *trustRecord) error {
	dir := TrustDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create trust store %q: %w", dir, err)
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("write trust store: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), trustFile(rec.Root))
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write trust store: %w", err)
	}
	return nil
}

// trust decides the trust state of res's project chain from the store.
func (l *loader) trust(res *Resolved, readOnly bool) TrustState {
	rec, err := readTrust(trustRoot(res.Root))
	if err != nil {
		res.Notices = append(res.Notices, "trust store: "+err.Error())
		return Untrusted
	}
	switch {
	case rec == nil:
		return Untrusted
	case rec.Hash == res.Hash:
		return Trusted
	case res.project.subsetOf(rec.Policy):
		if !readOnly {
			rec.Hash, rec.Files, rec.Policy, rec.Time = res.Hash, res.files, res.project, time.Now().UTC()
			if err := writeTrust(rec); err != nil {
				res.Notices = append(res.Notices, "could not record the tightened config as trusted: "+err.Error())
			}
		}
		return Trusted
	}
	res.NewGrants = grants(rec.Policy, res.project, res.Root, res.Dir)
	res.NewGrants = append(res.NewGrants, res.project.droppedDenies(rec.Policy)...)
	return Changed
}

// Allow records res's project config chain as trusted (`fence allow`).
// res must come from Load with a project (res.ConfigFile set, no -s).
func Allow(res *Resolved) error {
	if res.Root == "" || res.project == nil {
		return errors.New("no project config to trust")
	}
	return writeTrust(&trustRecord{Root: trustRoot(res.Root), Hash: res.Hash, Files: res.files,
		Policy: res.project, Time: time.Now().UTC()})
}

// Deny removes root from the trust store (`fence deny`), reporting whether
// it was trusted.
func Deny(root string) (bool, error) {
	err := os.Remove(trustFile(trustRoot(root)))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("remove trust record: %w", err)
	}
	return true, nil
}
