package io.tinyllamaj.data.corpus;

import com.github.luben.zstd.Zstd;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.zip.GZIPInputStream;
import java.util.zip.GZIPOutputStream;
import org.apache.parquet.bytes.BytesInput;
import org.apache.parquet.compression.CompressionCodecFactory;
import org.apache.parquet.hadoop.metadata.CompressionCodecName;
import org.xerial.snappy.Snappy;

/**
 * Parquet page codecs without Hadoop. parquet-java's own CodecFactory wraps Hadoop's
 * CompressionCodec classes, which would pull a 20 MB hadoop-client-api jar onto the runtime
 * classpath just to call snappy and zstd; these call the libraries directly. The codecs are
 * the ones Hugging Face parquet files use (StarCoderData: snappy); anything else is reported
 * as a corrupt file by the reader.
 */
public final class HadoopFreeCodecs implements CompressionCodecFactory {
    private static final int ZSTD_LEVEL = 3;

    @Override
    public BytesInputCompressor getCompressor(CompressionCodecName codec) {
        return new BytesInputCompressor() {
            @Override
            public BytesInput compress(BytesInput bytes) throws IOException {
                return BytesInput.from(HadoopFreeCodecs.compress(codec, bytes.toByteArray()));
            }

            @Override
            public CompressionCodecName getCodecName() {
                return codec;
            }

            @Override
            public void release() {
            }
        };
    }

    @Override
    public BytesInputDecompressor getDecompressor(CompressionCodecName codec) {
        return new BytesInputDecompressor() {
            @Override
            public BytesInput decompress(BytesInput bytes, int uncompressedSize) throws IOException {
                return BytesInput.from(HadoopFreeCodecs.decompress(codec, bytes.toByteArray(), uncompressedSize));
            }

            @Override
            public void decompress(ByteBuffer input, int compressedSize, ByteBuffer output, int uncompressedSize)
                    throws IOException {
                byte[] compressed = new byte[compressedSize];
                input.get(compressed);
                output.put(HadoopFreeCodecs.decompress(codec, compressed, uncompressedSize));
            }

            @Override
            public void release() {
            }
        };
    }

    @Override
    public void release() {
    }

    static byte[] compress(CompressionCodecName codec, byte[] data) throws IOException {
        return switch (codec) {
            case UNCOMPRESSED -> data;
            case SNAPPY -> Snappy.compress(data);
            case ZSTD -> Zstd.compress(data, ZSTD_LEVEL);
            case GZIP -> {
                ByteArrayOutputStream out = new ByteArrayOutputStream();
                try (GZIPOutputStream gzip = new GZIPOutputStream(out)) {
                    gzip.write(data);
                }
                yield out.toByteArray();
            }
            default -> throw new IOException("parquet codec " + codec + " is not supported");
        };
    }

    static byte[] decompress(CompressionCodecName codec, byte[] data, int uncompressedSize) throws IOException {
        byte[] result = switch (codec) {
            case UNCOMPRESSED -> data;
            case SNAPPY -> Snappy.uncompress(data);
            case ZSTD -> {
                byte[] out = new byte[uncompressedSize];
                long n = Zstd.decompressByteArray(out, 0, uncompressedSize, data, 0, data.length);
                if (Zstd.isError(n)) {
                    throw new IOException("zstd page: " + Zstd.getErrorName(n));
                }
                yield out;
            }
            case GZIP -> {
                try (GZIPInputStream gzip = new GZIPInputStream(new ByteArrayInputStream(data))) {
                    yield gzip.readAllBytes();
                }
            }
            default -> throw new IOException("parquet codec " + codec + " is not supported");
        };
        if (result.length != uncompressedSize) {
            throw new IOException("page decompressed to " + result.length + " bytes, header says " + uncompressedSize);
        }
        return result;
    }
}
