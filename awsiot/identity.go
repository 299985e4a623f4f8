package awsiot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/edge-agent/edge-agent/awsregion"
)

// ValidIdentityID reports whether id has the form of a Cognito identity id.
func ValidIdentityID(id string) bool {
	_, ok := awsregion.FromID(id)
	return ok
}

// loadOrCreateIdentity reads the persisted identity id or makes one with
// GetId and persists it. The caller holds idSem.
func (p *Provider) loadOrCreateIdentity(ctx context.Context) (string, error) {
	data, err := os.ReadFile(p.idPath)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(data))
		if !ValidIdentityID(id) {
			return "", fmt.Errorf("awsiot: %s holds %q, which is not a Cognito identity id (<region>:<uuid>): "+
				"restore the right id, or delete the file to create a new identity (its IoT policy must then be attached again)", p.idPath, truncate(id, 80))
		}
		if r := regionOf(id); r != regionOf(p.poolID) {
			p.log.Warn("stored Cognito identity is from another region than the identity pool; was the pool changed?",
				"identity_id", id, "file", p.idPath, "identity_pool_id", p.poolID)
		}
		return id, nil
	case errors.Is(err, fs.ErrNotExist):
	default:
		return "", fmt.Errorf("awsiot: reading the Cognito identity id from %s: %w (check the permissions of state_dir)", p.idPath, err)
	}

	id, err := p.getID(ctx)
	if err != nil {
		return "", err
	}
	if !ValidIdentityID(id) {
		return "", fmt.Errorf("awsiot: Cognito GetId for pool %s returned %q, which is not an identity id", p.poolID, truncate(id, 80))
	}
	if err := os.MkdirAll(filepath.Dir(p.idPath), 0o700); err != nil {
		return "", fmt.Errorf("awsiot: creating state_dir %s: %w", filepath.Dir(p.idPath), err)
	}
	if err := writeFileAtomic(p.idPath, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("awsiot: keeping the new Cognito identity id %s in %s failed, so it would be lost on restart: %w", id, p.idPath, err)
	}
	p.log.Info("created Cognito identity; grant it access to AWS IoT",
		"identity_id", id, "file", p.idPath, "identity_pool_id", p.poolID,
		"hint", "aws iot attach-policy --policy-name <your-policy> --target "+id)
	return id, nil
}

// writeFileAtomic writes data to path so that a crash leaves either the old
// file or the complete new one: temp file in the same directory, fsync,
// rename, fsync of the directory.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
