// Package fsutil holds the small file-system primitives that crypto and
// filestore share: the durable atomic write (after google/renameio), opening
// a file without following a symlink, and the permission checks for private
// files and directories.
package fsutil
