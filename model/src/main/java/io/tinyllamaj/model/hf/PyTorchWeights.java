package io.tinyllamaj.model.hf;

import io.tinyllamaj.model.torch.TorchArchive;
import io.tinyllamaj.model.torch.TorchTensor;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/** A {@code pytorch_model.bin} (or one of its shards): a torch.save'd dict from tensor names to tensors. */
final class PyTorchWeights implements WeightFile {

    private final TorchArchive archive;
    private final Map<String, TorchTensor> tensors;

    private PyTorchWeights(TorchArchive archive, Map<String, TorchTensor> tensors) {
        this.archive = archive;
        this.tensors = tensors;
    }

    static PyTorchWeights open(Path file) throws IOException {
        TorchArchive archive = TorchArchive.open(file);
        try {
            return new PyTorchWeights(archive, stateDict(file, archive.root()));
        } catch (IOException | RuntimeException e) {
            archive.close();
            throw e;
        }
    }

    /** A dict of name to tensor; anything else in it (a nested dict, a number) is not a weight file. */
    static Map<String, TorchTensor> stateDict(Path file, Object root) throws IOException {
        if (!(root instanceof Map<?, ?> map)) {
            throw new IOException(file + ": holds no state dict (the pickle's top level is not a dict)");
        }
        Map<String, TorchTensor> tensors = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : map.entrySet()) {
            if (!(e.getKey() instanceof String name) || !(e.getValue() instanceof TorchTensor t)) {
                throw new IOException(file + ": state dict entry " + e.getKey() + " is not a named tensor");
            }
            tensors.put(name, t);
        }
        return tensors;
    }

    @Override
    public Set<String> names() {
        return tensors.keySet();
    }

    @Override
    public void readInto(String name, long[] expectedShape, float[] dst, int dstOffset) throws IOException {
        TorchTensor t = tensors.get(name);
        if (t == null) {
            throw new IOException(archive.file() + ": tensor " + name + " is missing");
        }
        if (!Arrays.equals(t.size(), expectedShape)) {
            throw new IOException(archive.file() + ": tensor " + name + " has shape " + t.shape() + ", expected "
                    + Arrays.toString(expectedShape));
        }
        archive.readInto(name, t, dst, dstOffset);
    }

    @Override
    public void close() throws IOException {
        archive.close();
    }
}
