package io.tinyllamaj.model.torch;

import java.util.List;

/** A Python tuple from a pickle (lists are {@link java.util.List}s, dicts {@link java.util.Map}s). */
public record PyTuple(List<Object> items) {
}
