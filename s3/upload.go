package s3

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"
)

// abortTimeout bounds the AbortMultipartUpload sent after a failure, which
// runs even when the job's context is cancelled.
const abortTimeout = 30 * time.Second

// uploader puts local files into S3: one PUT up to PartSize, a multipart
// upload with Concurrency parts in flight above it. Parts are read from the
// file by offset (io.SectionReader), so memory does not grow with file size
// and the SDK can rewind a part to retry it.
type uploader struct {
	c   *Client
	api *s3.Client
}

// upload copies the file at path to bucket/key and returns its size. The
// object appears whole or not at all; a failed multipart upload is aborted
// so that its parts are not billed forever.
func (u *uploader) upload(ctx context.Context, path, bucket, key, ctype string, o op) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	size := info.Size()
	if size <= u.c.cfg.PartSize {
		_, err := u.api.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        aws.String(bucket),
			Key:           aws.String(key),
			Body:          io.NewSectionReader(f, 0, size),
			ContentLength: aws.Int64(size),
			ContentType:   aws.String(ctype),
		})
		return size, u.c.translate(err, o)
	}
	return size, u.multipart(ctx, f, size, bucket, key, ctype, o)
}

func (u *uploader) multipart(ctx context.Context, f *os.File, size int64, bucket, key, ctype string, o op) error {
	partSize := u.c.cfg.PartSize
	for (size+partSize-1)/partSize > maxParts {
		partSize *= 2
	}
	// CRC32 per part, as the SDK does for single PUTs, unless the user
	// turned request checksums off (AWS_REQUEST_CHECKSUM_CALCULATION=
	// when_required) for a store that does not support them.
	var algo types.ChecksumAlgorithm
	if u.api.Options().RequestChecksumCalculation != aws.RequestChecksumCalculationWhenRequired {
		algo = types.ChecksumAlgorithmCrc32
	}
	created, err := u.api.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:            aws.String(bucket),
		Key:               aws.String(key),
		ContentType:       aws.String(ctype),
		ChecksumAlgorithm: algo,
	})
	if err != nil {
		return u.c.translate(err, o)
	}
	abort := func(cause error) error {
		// Abort even when ctx is cancelled: the parts cost money.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		// The SDK retries an abort that fails while a cancelled part is
		// still being written; one that fails for good leaves parts that
		// cost money until a lifecycle rule removes them, so say which.
		if _, err := u.api.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(bucket), Key: aws.String(key), UploadId: created.UploadId,
		}); err != nil {
			u.c.cfg.Logger.Warn("s3 multipart upload not aborted; its parts remain until aborted or expired by a lifecycle rule",
				"uri", "s3://"+bucket+"/"+key, "upload_id", aws.ToString(created.UploadId), "error", u.c.translate(err, o).Error())
		}
		return u.c.translate(cause, o)
	}

	n := int((size + partSize - 1) / partSize)
	parts := make([]types.CompletedPart, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(u.c.cfg.Concurrency)
	for i := range n {
		off := int64(i) * partSize
		length := min(partSize, size-off)
		g.Go(func() error {
			out, err := u.api.UploadPart(gctx, &s3.UploadPartInput{
				Bucket:            aws.String(bucket),
				Key:               aws.String(key),
				UploadId:          created.UploadId,
				PartNumber:        aws.Int32(int32(i + 1)),
				Body:              io.NewSectionReader(f, off, length),
				ContentLength:     aws.Int64(length),
				ChecksumAlgorithm: algo,
			})
			if err != nil {
				return fmt.Errorf("part %d of %d: %w", i+1, n, err)
			}
			parts[i] = types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return abort(err)
	}
	_, err = u.api.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(bucket),
		Key:             aws.String(key),
		UploadId:        created.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return abort(err)
	}
	return nil
}
