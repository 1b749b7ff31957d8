//go:build !unix

package main

import "os/exec"

type owner struct{}

func serverOwner() (*owner, error)        { return nil, nil }
func (c *cluster) own(dir string) error   { return nil }
func runAs(cmd *exec.Cmd, o *owner) error { return nil }
