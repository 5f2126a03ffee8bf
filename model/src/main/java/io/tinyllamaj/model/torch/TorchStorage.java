package io.tinyllamaj.model.torch;

/** A storage a pickle refers to by persistent id: the zip entry {@code data/<key>} holding {@code numel} values. */
public record TorchStorage(String key, TorchDType dtype, long numel) {
}
