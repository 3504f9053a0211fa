package s3

import (
	"errors"
	"fmt"
	"net/http"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/kalla-dev/kalla"
)

// op describes a request for error messages: what was being done, to what.
type op struct {
	field  string // "uri" or "output_path"; "" for staging, whose failures are not the job's fault
	verb   string // "read", "list", "write", "delete"
	action string // the IAM action it needs, e.g. "s3:GetObject"
	bucket string
	uri    string
}

// translate turns an SDK error into a Kalla error that names the bucket and
// key: missing buckets and keys and denied access are validation errors of
// o.field; credentials the store rejects wrap ErrCredentials; anything else
// (network, cancellation) is wrapped as "verb uri: err". With no o.field
// (staging), nothing is a validation error. The result is scrubbed of
// secrets.
func (c *Client) translate(err error, o op) error {
	if err == nil {
		return nil
	}
	invalid := func(format string, args ...any) error {
		if o.field == "" {
			return c.scrub(fmt.Errorf(format, args...))
		}
		return kalla.Invalid(o.field, format, args...)
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch code := ae.ErrorCode(); code {
		case "NoSuchBucket":
			return invalid("bucket %q does not exist (%s %s)", o.bucket, o.verb, o.uri)
		case "NoSuchKey":
			return invalid("%s does not exist", o.uri)
		case "NotFound":
			if statusOf(err) == http.StatusNotFound {
				return invalid("%s does not exist (or its bucket %q does not)", o.uri, o.bucket)
			}
		case "AccessDenied", "Forbidden", "AllAccessDisabled", "AccountProblem":
			return invalid("access denied to %s: the credentials in use may not %s it; "+
				"check the bucket policy and the IAM permission %s", o.uri, o.verb, o.action)
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
			"TokenRefreshRequired", "InvalidSecurity":
			return c.scrub(fmt.Errorf("%w rejected (%s) when trying to %s %s: check AWS_ACCESS_KEY_ID, "+
				"AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, or the profile in use", ErrCredentials, code, o.verb, o.uri))
		case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
			return invalid("bucket %q is not in region %s (%s): set AWS_REGION to the bucket's region",
				o.bucket, c.region(), code)
		case "PreconditionFailed":
			return c.scrub(fmt.Errorf("%s %s: the object changed while it was being read; run the job again", o.verb, o.uri))
		}
	}
	return c.scrub(fmt.Errorf("%s %s: %w", o.verb, o.uri, err))
}

// statusOf returns the HTTP status of a failed response, or 0.
func statusOf(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// region returns the region the client signs for.
func (c *Client) region() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.api == nil {
		return "us-east-1"
	}
	return c.api.Options().Region
}
