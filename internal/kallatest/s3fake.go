package kallatest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// fakeStore is gofakes3 with an in-memory backend, in process: fast, but it
// checks no signature. Its handler refuses requests that are not signed
// for the server's access key (403 InvalidAccessKeyId, as S3 answers), so
// that tests of missing and wrong keys mean something against it too.
type fakeStore struct {
	backend *s3mem.Backend
	h       http.Handler
	mu      sync.Mutex
	denied  map[string]bool
}

func newFakeStore(access string) *fakeStore {
	st := &fakeStore{backend: s3mem.New(), denied: map[string]bool{}}
	fake := gofakes3.New(st.backend, gofakes3.WithLogger(gofakes3.DiscardLog()))
	next := fake.Server()
	st.h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := s3Credential.FindStringSubmatch(r.Header.Get("Authorization")); m == nil || m[1] != access {
			s3Error(w, r, http.StatusForbidden, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
			return
		}
		bucket, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		st.mu.Lock()
		denied := st.denied[bucket]
		st.mu.Unlock()
		if denied {
			s3Error(w, r, http.StatusForbidden, "AccessDenied", "Access Denied")
			return
		}
		next.ServeHTTP(w, r)
	})
	return st
}

var s3Credential = regexp.MustCompile(`Credential=([^/,\s]+)/`)

func (st *fakeStore) handler() http.Handler { return st.h }

func (st *fakeStore) verifiesSignatures() bool { return false }

func (st *fakeStore) pid() int { return 0 }

func (st *fakeStore) createBucket(_ context.Context, bucket string) error {
	return st.backend.CreateBucket(bucket)
}

func (st *fakeStore) put(_ context.Context, bucket, key string, data []byte) error {
	_, err := st.backend.PutObject(bucket, key, map[string]string{}, bytes.NewReader(data), int64(len(data)), nil)
	return err
}

func (st *fakeStore) get(_ context.Context, bucket, key string) ([]byte, error) {
	obj, err := st.backend.GetObject(bucket, key, nil)
	if err != nil {
		return nil, err
	}
	defer obj.Contents.Close()
	return io.ReadAll(obj.Contents)
}

func (st *fakeStore) keys(_ context.Context, bucket, prefix string) ([]string, error) {
	list, err := st.backend.ListBucket(bucket, &gofakes3.Prefix{Prefix: prefix, HasPrefix: true}, gofakes3.ListBucketPage{})
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, c := range list.Contents {
		keys = append(keys, c.Key)
	}
	sort.Strings(keys)
	return keys, nil
}

func (st *fakeStore) deny(_ context.Context, bucket string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.denied[bucket] = true
	return nil
}
