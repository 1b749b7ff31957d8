package filestore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/protocol"
)

// A Record is one record as ReadRecords reads it: its status, as Check
// reports it, and the session it holds when it opens (Err nil).
type Record = protocol.Record

// ReadRecords reads every record in dir and opens it with ring, for
// programs that only look, such as an operator's listing: it opens no
// Store, takes no lock and changes nothing. A record that does not open
// (sealed to another key, tampered, corrupt) is returned with Err set,
// never skipped; files that are not records are skipped, as List skips
// them. The records are sorted by auth type. Having seen no earlier
// version, it cannot tell a record rolled back (a Store can).
func ReadRecords(ctx context.Context, dir string, ring *crypto.Keyring) ([]Record, error) {
	dirs, err := storeDirs(dir)
	if err != nil {
		return nil, err
	}
	statuses, err := listAll(ctx, dirs, false)
	if err != nil {
		return nil, err
	}
	recs := make([]Record, len(statuses))
	for i := range statuses {
		recs[i] = readRecordFile(ring, statuses[i])
	}
	return recs, nil
}

// ReadRecord is ReadRecords for the record of authType alone. A missing
// record is an error wrapping sessionstore.ErrNotFound; one that does not
// open is returned with Err set.
func ReadRecord(ctx context.Context, dir string, ring *crypto.Keyring, authType string) (Record, error) {
	stem, err := stemOf(authType)
	if err != nil {
		return Record{}, err
	}
	dirs, err := storeDirs(dir)
	if err != nil {
		return Record{}, err
	}
	path := filepath.Join(dirs[0], stem+recordSuffix)
	r := readRecordFile(ring, RecordStatus{Store: dirs[0], AuthType: authType, Location: path, Key: -1})
	if errors.Is(r.Err, fs.ErrNotExist) {
		return Record{}, fmt.Errorf("filestore: %s: %w", path, sessionstore.ErrNotFound)
	}
	return r, nil
}

// readRecordFile opens the record file st names with ring.
func readRecordFile(ring *crypto.Keyring, st RecordStatus) Record {
	data, err := readRecord(st.Location)
	if err != nil {
		st.SetErr(fmt.Errorf("filestore: %w", err))
		return Record{RecordStatus: st}
	}
	f := protocol.Fleet{Pkg: "filestore", Where: func(string) string { return st.Location }}
	r := f.OpenRecord(protocol.Raw{Name: st.AuthType, Data: data}, ring)
	r.Store = st.Store
	return r
}
