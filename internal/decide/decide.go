// Package decide is what Set, Update and Delete decide once a backend
// holds a record's lock and has read the record: the same rules for every
// backend.
package decide

import (
	"errors"

	"github.com/sessionstore/sessionstore"
)

// An Action is what a writer does after deciding.
type Action int

const (
	Store  Action = iota + 1 // seal and write the returned value
	Remove                   // delete the record
	Keep                     // write nothing; the current value stands
)

// Current is the record a writer found under the lock.
type Current struct {
	Exists bool
	Auth   sessionstore.AuthObject // the value, when it opened
	Err    error                   // the record exists but does not open
}

// A Func decides a write from the current record.
type Func func(Current) (sessionstore.AuthObject, Action, error)

// Set stores auth, replacing even a record that does not open, except one
// sealed to a key the writer does not hold (sessionstore.ErrWrongKey): the
// writer's keys are probably stale, and the record may be fine for others.
func Set(auth sessionstore.AuthObject) Func {
	return func(c Current) (sessionstore.AuthObject, Action, error) {
		if c.Err != nil && errors.Is(c.Err, sessionstore.ErrWrongKey) {
			return sessionstore.AuthObject{}, 0, c.Err
		}
		return auth, Store, nil
	}
}

// Update runs fn on a copy of the current value. A record that does not
// open fails without calling fn; fn's error writes nothing; a value Equal
// to the current one writes nothing either.
func Update(fn func(cur sessionstore.AuthObject, exists bool) (sessionstore.AuthObject, error)) Func {
	return func(c Current) (sessionstore.AuthObject, Action, error) {
		if c.Err != nil {
			return sessionstore.AuthObject{}, 0, c.Err
		}
		next, err := fn(c.Auth.Clone(), c.Exists)
		if err == nil && c.Exists && next.Equal(c.Auth) {
			return next, Keep, nil
		}
		return next, Store, err
	}
}

// Delete removes the record, whatever it holds.
func Delete() Func {
	return func(Current) (sessionstore.AuthObject, Action, error) {
		return sessionstore.AuthObject{}, Remove, nil
	}
}
