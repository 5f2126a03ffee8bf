package io.tinyllamaj.model.torch;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Enumeration;
import java.util.zip.CRC32;
import java.util.zip.CheckedInputStream;
import java.util.zip.ZipEntry;
import java.util.zip.ZipException;
import java.util.zip.ZipFile;

/**
 * A file written by {@code torch.save}: a zip holding {@code <archive>/data.pkl} (the pickled
 * object, read by {@link StateDictPickle}), {@code <archive>/data/<key>} (one entry per storage,
 * raw little-endian values) and {@code <archive>/byteorder}. Every tensor is checked against
 * its storage entry (dtype size x (offset + strided extent) within the entry) before a value is
 * read. The legacy pre-zip format is refused.
 */
public final class TorchArchive implements AutoCloseable {

    private final Path file;
    private final ZipFile zip;
    private final String prefix;
    private final Object root;

    private TorchArchive(Path file, ZipFile zip, String prefix, Object root) {
        this.file = file;
        this.zip = zip;
        this.prefix = prefix;
        this.root = root;
    }

    public static TorchArchive open(Path file) throws IOException {
        if (!Files.isRegularFile(file)) {
            throw new IOException(file + ": file not found");
        }
        byte[] magic = new byte[4];
        try (InputStream in = Files.newInputStream(file)) {
            if (in.readNBytes(magic, 0, 4) < 4 || !Arrays.equals(magic, new byte[]{'P', 'K', 3, 4})) {
                throw new IOException(file + ": not a zip-format PyTorch checkpoint (the legacy pre-1.6 format and other "
                        + "files are not read; re-save it with torch.save in a current PyTorch)");
            }
        }
        ZipFile zip;
        try {
            zip = new ZipFile(file.toFile());
        } catch (ZipException e) {
            throw new IOException(file + ": corrupt or truncated zip (" + e.getMessage() + ")");
        }
        try {
            String prefix = archivePrefix(file, zip);
            String order = new String(entryBytes(file, zip, prefix + "byteorder", 16, true), java.nio.charset.StandardCharsets.US_ASCII);
            if (!order.isEmpty() && !order.equals("little")) {
                throw new IOException(file + ": byteorder is '" + order + "'; only little-endian checkpoints are read");
            }
            byte[] pickle = entryBytes(file, zip, prefix + "data.pkl", Integer.MAX_VALUE - 16, false);
            Object root = StateDictPickle.load(pickle, file + " (" + prefix + "data.pkl)");
            return new TorchArchive(file, zip, prefix, root);
        } catch (IOException | RuntimeException e) {
            zip.close();
            throw e;
        }
    }

    /** The one folder every entry lies in, which holds data.pkl. */
    private static String archivePrefix(Path file, ZipFile zip) throws IOException {
        String prefix = null;
        for (Enumeration<? extends ZipEntry> entries = zip.entries(); entries.hasMoreElements(); ) {
            String name = entries.nextElement().getName();
            int slash = name.indexOf('/');
            String folder = slash < 0 ? "" : name.substring(0, slash + 1);
            if (prefix == null) {
                prefix = folder;
            } else if (!prefix.equals(folder)) {
                throw new IOException(file + ": entries lie in more than one folder ('" + prefix + "' and '" + folder
                        + "'), not a torch.save archive");
            }
        }
        if (prefix == null || prefix.isEmpty() || zip.getEntry(prefix + "data.pkl") == null) {
            throw new IOException(file + ": no <archive>/data.pkl entry, not a torch.save archive");
        }
        return prefix;
    }

    private static byte[] entryBytes(Path file, ZipFile zip, String name, int limit, boolean optional) throws IOException {
        ZipEntry entry = zip.getEntry(name);
        if (entry == null) {
            if (optional) {
                return new byte[0];
            }
            throw new IOException(file + ": entry " + name + " is missing");
        }
        if (entry.getSize() > limit) {
            throw new IOException(file + ": entry " + name + " holds " + entry.getSize() + " bytes, more than " + limit);
        }
        CRC32 crc = new CRC32();
        try (InputStream in = new CheckedInputStream(zip.getInputStream(entry), crc)) {
            byte[] bytes = in.readNBytes(limit);
            if (entry.getSize() >= 0 && bytes.length != entry.getSize()) {
                throw new IOException(file + ": entry " + name + " is truncated (" + bytes.length + " of " + entry.getSize() + " bytes)");
            }
            checkCrc(file, entry, crc);
            return bytes;
        } catch (ZipException e) {
            throw new IOException(file + ": entry " + name + " is corrupt (" + e.getMessage() + ")");
        }
    }

    /** torch.save stores its entries uncompressed, and the zip reader checks no checksum of those: a flipped byte would pass. */
    private static void checkCrc(Path file, ZipEntry entry, CRC32 crc) throws IOException {
        if (entry.getCrc() != -1 && crc.getValue() != entry.getCrc()) {
            throw new IOException(file + ": entry " + entry.getName() + " fails its CRC-32 check (damaged: "
                    + String.format("%08x", crc.getValue()) + ", the archive says " + String.format("%08x", entry.getCrc()) + ")");
        }
    }

    public Path file() {
        return file;
    }

    /** The unpickled object: for a state dict, a map from names to {@link TorchTensor}s. */
    public Object root() {
        return root;
    }

    /** The tensor's values as fp32 into dst[dstOffset ...], row-major over its size whatever its strides. */
    public void readInto(String name, TorchTensor t, float[] dst, int dstOffset) throws IOException {
        String where = file + ": tensor " + name;
        TorchStorage s = t.storage();
        if (s.dtype() == TorchDType.I64) {
            throw new IOException(where + " holds integers (int64), not weights");
        }
        boolean empty = false;
        for (long size : t.size()) {
            empty |= size == 0;
        }
        if (empty) {
            return;
        }
        long last = t.offset();
        try {
            // sizes, strides and the offset are non-negative (StateDictPickle), so only overflow could hide an extent
            for (int d = 0; d < t.size().length; d++) {
                last = Math.addExact(last, Math.multiplyExact(t.size()[d] - 1, t.stride()[d]));
            }
        } catch (ArithmeticException e) {
            throw new IOException(where + " (" + t.shape() + ", strides " + Arrays.toString(t.stride()) + " at offset " + t.offset()
                    + ") reaches past 2^63 elements of storage " + s.key() + ", which holds " + s.numel());
        }
        if (last >= s.numel()) {
            throw new IOException(where + " (" + t.shape() + " at offset " + t.offset() + ") reaches element " + last
                    + " of storage " + s.key() + ", which holds " + s.numel());
        }
        long needed = (last + 1) * s.dtype().bytes;
        String entryName = prefix + "data/" + s.key();
        ZipEntry entry = zip.getEntry(entryName);
        if (entry == null) {
            throw new IOException(where + ": its storage entry " + entryName + " is missing");
        }
        if (entry.getSize() >= 0 && entry.getSize() < (long) s.numel() * s.dtype().bytes) {
            throw new IOException(where + ": storage entry " + entryName + " holds " + entry.getSize() + " bytes, shorter than its "
                    + s.numel() + " " + s.dtype() + " values");
        }
        if (needed > Integer.MAX_VALUE - 16) {
            throw new IOException(where + " lies past 2 GiB into its storage; not read");
        }
        byte[] bytes;
        CRC32 crc = new CRC32();
        try (InputStream in = new CheckedInputStream(zip.getInputStream(entry), crc)) {
            bytes = in.readNBytes((int) needed);
            in.transferTo(OutputStream.nullOutputStream()); // the rest of the entry, for its checksum
        } catch (ZipException e) {
            throw new IOException(where + ": storage entry " + entryName + " is corrupt (" + e.getMessage() + ")");
        }
        if (bytes.length < needed) {
            throw new IOException(where + ": storage entry " + entryName + " holds " + bytes.length + " bytes, the tensor needs " + needed);
        }
        checkCrc(file, entry, crc);
        ByteBuffer data = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        long n = t.elements();
        int rank = t.size().length;
        long[] index = new long[rank];
        for (long i = 0; i < n; i++) {
            long element = t.offset();
            for (int d = 0; d < rank; d++) {
                element += index[d] * t.stride()[d];
            }
            int at = (int) (element * s.dtype().bytes);
            dst[dstOffset + (int) i] = switch (s.dtype()) {
                case F32 -> data.getFloat(at);
                case BF16 -> Float.intBitsToFloat((data.getShort(at) & 0xFFFF) << 16);
                case F16 -> Float.float16ToFloat(data.getShort(at));
                case I64 -> throw new IllegalStateException();
            };
            for (int d = rank - 1; d >= 0 && ++index[d] == t.size()[d]; d--) {
                index[d] = 0;
            }
        }
    }

    @Override
    public void close() throws IOException {
        zip.close();
    }
}
