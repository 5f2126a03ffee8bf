package io.tinyllamaj.model.torch;

import java.io.IOException;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A pickle interpreter for PyTorch state dicts that never runs anything: it knows only the
 * opcodes {@code torch.save} emits for containers, scalars and tensors, and only the globals
 * a state dict names ({@code collections.OrderedDict}, torch's tensor rebuild functions and
 * storage types). Any other opcode or global is refused in one line before anything is built
 * from it, so a hostile pickle ({@code os.system}, {@code builtins.eval}, INST/OBJ) gets no
 * further than its first forbidden instruction.
 */
public final class StateDictPickle {

    /** A global the allow-list admits; only ever a marker, never a callable. */
    private record Global(String module, String name) {
        @Override
        public String toString() {
            return module + "." + name;
        }
    }

    private static final Object MARK = new Object();
    private static final int MAX_MEMO = 50_000_000;

    private final ByteBuffer in;
    private final String where;
    private final List<Object> stack = new ArrayList<>();
    private final List<Integer> marks = new ArrayList<>();
    private final Map<Long, Object> memo = new HashMap<>();
    private final Map<String, TorchStorage> storages = new LinkedHashMap<>();

    private StateDictPickle(byte[] pickle, String where) {
        this.in = ByteBuffer.wrap(pickle).order(ByteOrder.LITTLE_ENDIAN);
        this.where = where;
    }

    /**
     * The object a pickle describes: maps, lists, {@link PyTuple}s, strings, Longs (BigIntegers
     * past 64 bits), Doubles, Booleans, nulls and {@link TorchTensor}s. {@code where} names the
     * pickle in messages.
     */
    public static Object load(byte[] pickle, String where) throws IOException {
        return new StateDictPickle(pickle, where).run();
    }

    private Object run() throws IOException {
        while (true) {
            int at = in.position();
            if (!in.hasRemaining()) {
                throw fail("ends without STOP (truncated)");
            }
            int op = in.get() & 0xFF;
            try {
                switch (op) {
                    case 0x80 -> { // PROTO
                        int protocol = u8();
                        if (protocol > 5) {
                            throw fail("pickle protocol " + protocol + " is newer than any Python writes");
                        }
                    }
                    case 0x95 -> bytes(8) /* FRAME: framing is only a read-ahead hint */;
                    case '}' -> push(new LinkedHashMap<Object, Object>());
                    case ']' -> push(new ArrayList<>());
                    case ')' -> push(new PyTuple(List.of()));
                    case '(' -> {
                        marks.add(stack.size());
                        push(MARK);
                    }
                    case 'X' -> push(utf8(checkedLength(in.getInt() & 0xFFFFFFFFL)));
                    case 0x8c -> push(utf8(u8()));
                    case 'J' -> push((long) in.getInt());
                    case 'K' -> push((long) u8());
                    case 'M' -> push((long) (in.getShort() & 0xFFFF));
                    case 0x8a -> push(long1());
                    case 'G' -> push(ByteBuffer.wrap(bytes(8)).getDouble()); // BINFLOAT is big-endian
                    case 0x88 -> push(Boolean.TRUE);
                    case 0x89 -> push(Boolean.FALSE);
                    case 'N' -> push(null);
                    case 0x85 -> push(new PyTuple(popN(1)));
                    case 0x86 -> push(new PyTuple(popN(2)));
                    case 0x87 -> push(new PyTuple(popN(3)));
                    case 't' -> push(new PyTuple(popToMark()));
                    case 's' -> {
                        Object value = pop(), key = pop();
                        dict(peek(), "SETITEM").put(hashable(key), value);
                    }
                    case 'u' -> {
                        List<Object> items = popToMark();
                        if (items.size() % 2 != 0) {
                            throw fail("SETITEMS with an odd number of items");
                        }
                        Map<Object, Object> dict = dict(peek(), "SETITEMS");
                        for (int i = 0; i < items.size(); i += 2) {
                            dict.put(hashable(items.get(i)), items.get(i + 1));
                        }
                    }
                    case 'a' -> {
                        Object value = pop();
                        list(peek(), "APPEND").add(value);
                    }
                    case 'e' -> {
                        List<Object> items = popToMark();
                        list(peek(), "APPENDS").addAll(items);
                    }
                    case 'q' -> memoPut(u8());
                    case 'r' -> memoPut(in.getInt() & 0xFFFFFFFFL);
                    case 0x94 -> memoPut(memo.size());
                    case 'h' -> memoGet(u8());
                    case 'j' -> memoGet(in.getInt() & 0xFFFFFFFFL);
                    case 'c' -> push(global(line(), line()));
                    case 0x93 -> {
                        Object name = pop(), module = pop();
                        if (!(module instanceof String m) || !(name instanceof String n)) {
                            throw fail("STACK_GLOBAL with a module or name that is not a string");
                        }
                        push(global(m, n));
                    }
                    case 'R' -> {
                        Object args = pop(), callable = pop();
                        push(reduce(callable, args));
                    }
                    case 'Q' -> push(persistent(pop()));
                    case 'b' -> {
                        Object state = pop();
                        // an OrderedDict's instance dict: torch's state dicts carry _metadata there
                        if (!(peek() instanceof Map) || !(state == null || state instanceof Map)) {
                            throw fail("BUILD on something other than an OrderedDict is not part of a state dict");
                        }
                    }
                    case '.' -> {
                        if (stack.size() != 1 || !marks.isEmpty()) {
                            throw fail("STOP with " + stack.size() + " values on the stack (malformed)");
                        }
                        return stack.getFirst();
                    }
                    default -> throw fail("opcode " + opcodeName(op) + " at byte " + at
                            + " is not one a state dict uses; refused (nothing was executed)");
                }
            } catch (java.nio.BufferUnderflowException e) {
                throw fail("ends inside opcode " + opcodeName(op) + " at byte " + at + " (truncated)");
            }
        }
    }

    /** Opcodes by name, for messages: the ones that build or call arbitrary objects above all. */
    private static String opcodeName(int op) {
        String name = switch (op) {
            case 'i' -> "INST";
            case 'o' -> "OBJ";
            case 0x81 -> "NEWOBJ";
            case 0x92 -> "NEWOBJ_EX";
            case 'P' -> "PERSID";
            case 0x82, 0x83, 0x84 -> "EXT";
            case 'S' -> "STRING";
            case 'T' -> "BINSTRING";
            case 'U' -> "SHORT_BINSTRING";
            case 'B' -> "BINBYTES";
            case 'C' -> "SHORT_BINBYTES";
            case 0x8e -> "BINBYTES8";
            case 0x8d -> "BINUNICODE8";
            case 0x8b -> "LONG4";
            case 'I' -> "INT";
            case 'L' -> "LONG";
            case 'F' -> "FLOAT";
            case 'V' -> "UNICODE";
            case 'l' -> "LIST";
            case 'd' -> "DICT";
            case 'p' -> "PUT";
            case 'g' -> "GET";
            case '0' -> "POP";
            case '1' -> "POP_MARK";
            case '2' -> "DUP";
            case 0x8f -> "EMPTY_SET";
            case 0x90 -> "ADDITEMS";
            case 0x91 -> "FROZENSET";
            case 0x96 -> "BYTEARRAY8";
            case 0x97 -> "NEXT_BUFFER";
            case 0x98 -> "READONLY_BUFFER";
            default -> null;
        };
        return name == null ? String.format("0x%02x", op) : name + String.format(" (0x%02x)", op);
    }

    private Object global(String module, String name) throws IOException {
        boolean allowed = switch (module) {
            case "collections" -> name.equals("OrderedDict");
            case "torch._utils" -> name.equals("_rebuild_tensor_v2") || name.equals("_rebuild_parameter");
            case "torch" -> TorchDType.ofStorageClass(name).isPresent();
            default -> false;
        };
        if (!allowed && module.equals("torch") && name.endsWith("Storage") && name.length() < 40) {
            throw fail("storage type torch." + printable(name) + " is not supported (FloatStorage, HalfStorage, "
                    + "BFloat16Storage and LongStorage are)");
        }
        if (!allowed) {
            throw fail("asks for global " + printable(module) + "." + printable(name)
                    + ", which is not part of a state dict; refused (nothing was executed)");
        }
        return new Global(module, name);
    }

    private Object reduce(Object callable, Object args) throws IOException {
        if (!(callable instanceof Global g) || g.module().equals("torch")) {
            throw fail("REDUCE calls " + describe(callable) + ", which is not an allowed callable; refused");
        }
        if (!(args instanceof PyTuple(List<Object> a))) {
            throw fail("REDUCE of " + g + " without an argument tuple");
        }
        return switch (g.name()) {
            case "OrderedDict" -> {
                if (!a.isEmpty()) {
                    throw fail("collections.OrderedDict called with arguments (a state dict's is built by SETITEMS)");
                }
                yield new LinkedHashMap<Object, Object>();
            }
            case "_rebuild_parameter" -> {
                if (a.size() != 3 || !(a.getFirst() instanceof TorchTensor t)) {
                    throw fail("torch._utils._rebuild_parameter without (tensor, requires_grad, hooks) arguments");
                }
                yield t;
            }
            default -> tensor(a);
        };
    }

    /** {@code _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])}. */
    private TorchTensor tensor(List<Object> a) throws IOException {
        if (a.size() < 6 || a.size() > 7 || !(a.get(0) instanceof TorchStorage storage) || !(a.get(1) instanceof Long offset)
                || !(a.get(2) instanceof PyTuple(List<Object> size)) || !(a.get(3) instanceof PyTuple(List<Object> stride))
                || size.size() != stride.size()) {
            throw fail("torch._utils._rebuild_tensor_v2 with malformed arguments " + describe(new PyTuple(a)));
        }
        long[] sizes = longs(size, "size"), strides = longs(stride, "stride");
        if (offset < 0) {
            throw fail("a tensor with a negative storage offset " + offset);
        }
        return new TorchTensor(storage, offset, sizes, strides);
    }

    private long[] longs(List<Object> values, String what) throws IOException {
        long[] out = new long[values.size()];
        for (int i = 0; i < out.length; i++) {
            if (!(values.get(i) instanceof Long v) || v < 0) {
                throw fail("a tensor " + what + " holds " + describe(values.get(i)) + ", not a non-negative integer");
            }
            out[i] = v;
        }
        return out;
    }

    /** {@code ('storage', torch.<Type>Storage, key, location, numel)}; one object per key, so tied tensors share it. */
    private TorchStorage persistent(Object pid) throws IOException {
        if (!(pid instanceof PyTuple(List<Object> p)) || p.size() != 5 || !"storage".equals(p.get(0))
                || !(p.get(1) instanceof Global type) || !type.module().equals("torch") || !(p.get(2) instanceof String key)
                || !(p.get(3) instanceof String) || !(p.get(4) instanceof Long numel) || numel < 0) {
            throw fail("persistent id " + describe(pid) + " is not a torch storage reference");
        }
        TorchDType dtype = TorchDType.ofStorageClass(type.name()).orElseThrow();
        TorchStorage storage = storages.computeIfAbsent(key, k -> new TorchStorage(k, dtype, numel));
        if (storage.dtype() != dtype || storage.numel() != numel) {
            throw fail("storage " + printable(key) + " is referred to as both " + storage.dtype() + " x " + storage.numel()
                    + " and " + dtype + " x " + numel);
        }
        return storage;
    }

    private void memoPut(long index) throws IOException {
        if (stack.isEmpty()) {
            throw fail("memo write with an empty stack");
        }
        if (memo.size() >= MAX_MEMO) {
            throw fail("more than " + MAX_MEMO + " memo entries");
        }
        memo.put(index, peek());
    }

    private void memoGet(long index) throws IOException {
        if (!memo.containsKey(index)) {
            throw fail("memo entry " + index + " is read before it is written");
        }
        push(memo.get(index));
    }

    private Object long1() throws IOException {
        int n = u8();
        byte[] le = bytes(n);
        byte[] be = new byte[n + 1];
        for (int i = 0; i < n; i++) {
            be[n - i] = le[i];
        }
        be[0] = n > 0 && le[n - 1] < 0 ? (byte) -1 : 0;
        BigInteger value = new BigInteger(be);
        return value.bitLength() < 64 ? (Object) value.longValue() : value;
    }

    private String line() throws IOException {
        StringBuilder s = new StringBuilder();
        while (true) {
            if (!in.hasRemaining()) {
                throw fail("ends inside a GLOBAL name (truncated)");
            }
            byte b = in.get();
            if (b == '\n') {
                return s.toString();
            }
            if (s.length() > 200) {
                throw fail("a GLOBAL name longer than 200 characters");
            }
            s.append((char) (b & 0xFF));
        }
    }

    private int checkedLength(long length) throws IOException {
        if (length > in.remaining()) {
            throw fail("a string of " + length + " bytes runs past the end (truncated)");
        }
        return (int) length;
    }

    private String utf8(int length) throws IOException {
        byte[] b = bytes(checkedLength(length));
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(b)).toString();
        } catch (CharacterCodingException e) {
            throw fail("a string that is not valid UTF-8");
        }
    }

    private byte[] bytes(int n) throws IOException {
        byte[] b = new byte[checkedLength(n)];
        in.get(b);
        return b;
    }

    private int u8() {
        return in.get() & 0xFF;
    }

    private void push(Object value) {
        stack.add(value);
    }

    private Object pop() throws IOException {
        if (stack.isEmpty() || stack.getLast() == MARK) {
            throw fail("pops an empty stack (malformed)");
        }
        return stack.removeLast();
    }

    private Object peek() throws IOException {
        if (stack.isEmpty() || stack.getLast() == MARK) {
            throw fail("reads an empty stack (malformed)");
        }
        return stack.getLast();
    }

    private List<Object> popN(int n) throws IOException {
        Object[] items = new Object[n];
        for (int i = n - 1; i >= 0; i--) {
            items[i] = pop();
        }
        return Arrays.asList(items);
    }

    private List<Object> popToMark() throws IOException {
        if (marks.isEmpty()) {
            throw fail("an opcode that needs a MARK found none (malformed)");
        }
        int mark = marks.removeLast();
        List<Object> items = new ArrayList<>(stack.subList(mark + 1, stack.size()));
        stack.subList(mark, stack.size()).clear();
        return items;
    }

    @SuppressWarnings("unchecked")
    private Map<Object, Object> dict(Object target, String op) throws IOException {
        if (!(target instanceof Map)) {
            throw fail(op + " on " + describe(target) + ", not a dict");
        }
        return (Map<Object, Object>) target;
    }

    @SuppressWarnings("unchecked")
    private List<Object> list(Object target, String op) throws IOException {
        if (!(target instanceof List)) {
            throw fail(op + " on " + describe(target) + ", not a list");
        }
        return (List<Object>) target;
    }

    /** Dict keys: strings, integers, booleans, None and tuples of them, as in a state dict. */
    private Object hashable(Object key) throws IOException {
        if (key == null || key instanceof String || key instanceof Long || key instanceof BigInteger || key instanceof Boolean
                || key instanceof Double) {
            return key;
        }
        if (key instanceof PyTuple(List<Object> items)) {
            for (Object item : items) {
                hashable(item);
            }
            return key;
        }
        throw fail("a dict key " + describe(key) + " that a state dict does not use");
    }

    private static String describe(Object value) {
        return switch (value) {
            case null -> "None";
            case Global g -> g.toString();
            case String s -> "'" + printable(s) + "'";
            case PyTuple(List<Object> items) -> "(" + String.join(", ", items.stream().map(StateDictPickle::describe).toList()) + ")";
            case TorchTensor t -> "a tensor";
            case TorchStorage s -> "a storage";
            case Map<?, ?> m -> "a dict";
            case List<?> l -> "a list";
            default -> value == MARK ? "MARK" : String.valueOf(value);
        };
    }

    /** At most 60 printable characters: a hostile name must not flood or forge the message. */
    private static String printable(String s) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < s.length() && b.length() < 60; i++) {
            char c = s.charAt(i);
            b.append(c >= 0x20 && c < 0x7f ? c : '?');
        }
        return s.length() > 60 ? b + "..." : b.toString();
    }

    private IOException fail(String problem) {
        return new IOException(where + ": " + problem);
    }
}
