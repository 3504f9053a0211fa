package s3

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// maxResultRead bounds what ReadResult reads: a summary.json is a few KB.
const maxResultRead = 16 << 20

// ReadResult implements kalla.ResultReader: carry-over reads the previous
// run's summary.json below the output prefix. A missing object, bucket or
// denied access is a *kalla.ValidationError.
func (o *Output) ReadResult(ctx context.Context, name string) ([]byte, error) {
	api, err := o.c.session(ctx, o.loc.String())
	if err != nil {
		return nil, err
	}
	uri := o.Location(name)
	out, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(o.loc.bucket), Key: aws.String(o.key(name))})
	if err != nil {
		return nil, o.c.translate(err, op{field: "from", verb: "read", action: "s3:GetObject", bucket: o.loc.bucket, uri: uri})
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, maxResultRead+1))
	if err != nil {
		return nil, o.c.scrub(fmt.Errorf("read %s: %w", uri, err))
	}
	if len(b) > maxResultRead {
		return nil, fmt.Errorf("read %s: larger than %d bytes", uri, maxResultRead)
	}
	return b, nil
}
