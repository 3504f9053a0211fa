package s3

import (
	"path"
	"strings"

	"github.com/kalla-dev/kalla"
)

// kind says what the key of a source URI names.
type kind int

const (
	kindObject kind = iota // one object
	kindPrefix             // every data object below a prefix
	kindGlob               // the objects whose keys match a pattern
)

// location is a parsed s3:// URI.
type location struct {
	bucket string
	// key is the object key, the prefix (possibly empty) or the pattern.
	key    string
	kind   kind
	format kalla.FileFormat // of an object; empty for prefixes and globs
}

// String returns the URI.
func (l location) String() string { return "s3://" + l.bucket + "/" + l.key }

// objectURI returns the URI of key in l's bucket.
func (l location) objectURI(key string) string { return "s3://" + l.bucket + "/" + key }

// parseBucket splits an s3:// URI into bucket and key. Keys are taken as
// written: S3 keys may hold '?', '#' and '%', so the URI is not URL-decoded.
func parseBucket(uri, field string) (bucket, key string, err error) {
	if len(uri) < 5 || !strings.EqualFold(uri[:5], "s3://") {
		return "", "", kalla.Invalid(field, "%q is not an s3:// URI", uri)
	}
	rest := uri[5:]
	bucket, key, _ = strings.Cut(rest, "/")
	if strings.Contains(bucket, "@") {
		// Do not echo it: it may be an access key and a secret.
		return "", "", kalla.Invalid(field, "credentials in an s3:// URI are not supported: "+
			"give them as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or a profile")
	}
	if bucket == "" {
		return "", "", kalla.Invalid(field, "%q names no bucket: write s3://bucket/key", uri)
	}
	if !validBucket(bucket) {
		return "", "", kalla.Invalid(field, "%q is not a valid bucket name (3 to 63 lower-case letters, digits, '.', '-' or '_')", bucket)
	}
	return bucket, key, nil
}

// validBucket accepts S3 bucket names, plus the underscores that GCS and
// some S3-compatible stores allow.
func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for _, r := range b {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}

// parseSource parses a source URI: s3://bucket/key.ext, s3://bucket/prefix/
// or s3://bucket/prefix/*.ext.
func parseSource(uri string) (location, error) {
	bucket, key, err := parseBucket(uri, "uri")
	if err != nil {
		return location{}, err
	}
	l := location{bucket: bucket, key: key}
	switch {
	case strings.ContainsAny(key, "*?["):
		if _, err := path.Match(key, ""); err != nil {
			return location{}, kalla.Invalid("uri", "malformed pattern %q: %v", key, err)
		}
		l.kind = kindGlob
	case key == "" && !strings.HasSuffix(uri, "/"):
		return location{}, kalla.Invalid("uri", "%q names a bucket but no object: write s3://%s/key.csv, "+
			"or s3://%s/ for every object in the bucket", uri, bucket, bucket)
	case key == "" || strings.HasSuffix(key, "/"):
		l.kind = kindPrefix
	default:
		l.kind = kindObject
		format, ok := formatOf(key)
		if !ok {
			return location{}, kalla.Invalid("uri", "cannot tell the format of %s: name a .csv, .csv.gz, .csv.zst or "+
				".parquet object, or a prefix ending in / (s3://%s/%s/)", uri, bucket, key)
		}
		l.format = format
	}
	return l, nil
}

// parseOutput parses an output_path s3://bucket[/prefix][/].
func parseOutput(p string) (location, error) {
	bucket, key, err := parseBucket(p, "output_path")
	if err != nil {
		return location{}, err
	}
	key = strings.Trim(key, "/")
	if strings.ContainsAny(key, "*?[") {
		return location{}, kalla.Invalid("output_path", "%q is a pattern, not a folder", p)
	}
	return location{bucket: bucket, key: key, kind: kindPrefix}, nil
}

// formatOf tells an object's format from its key; compressed CSV (.gz,
// .zst) is CSV, which DuckDB decompresses itself.
func formatOf(key string) (kalla.FileFormat, bool) {
	lower := strings.ToLower(key)
	base := strings.TrimSuffix(strings.TrimSuffix(lower, ".gz"), ".zst")
	switch {
	case strings.HasSuffix(base, ".csv"), strings.HasSuffix(base, ".tsv"), strings.HasSuffix(base, ".txt"):
		return kalla.FormatCSV, true
	case base == lower && (strings.HasSuffix(lower, ".parquet") || strings.HasSuffix(lower, ".pq")):
		return kalla.FormatParquet, true
	}
	return "", false
}
