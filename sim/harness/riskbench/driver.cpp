// riskbench: drive a Verilated design from a file of per-cycle input records, in C++.
//
// Built by sim/harness/riskbench/builder.py around the Verilated RiskBench wrapper (top.py),
// but it knows no port of that design by name: the ports come from the generated wh_ports.h
// (the X-macro WH_PORTS(X), name/direction/width, written by sim/harness/build.py's
// ports_header from Vdut.h), and the few the caller cares about are named on the command
// line. Every port is handled as its Verilator storage: CData/SData/IData/QData or
// VlWide<N> (N 32-bit words), all little-endian, sizeof(Vdut::port) bytes — so a port of any
// width is a plain byte copy, and Python packs and unpacks the values.
//
//   riskbench --layout
//       prints one line per port: name, direction (in/out/inout), width, storage bytes, in
//       Vdut.h order; the record and snapshot layouts below follow that order.
//   riskbench run STIM VERDICTS FINAL VALID PAYLOAD VIEW VIEWS
//       STIM: header ("RBSTIM01", u32 record bytes, u32 input count) then one record per
//       cycle: every input but clk and rst, each in its storage bytes, in port order.
//       Cycle n: apply record n with clk low and evaluate; if output VALID is non-zero, append
//       (u64 n, PAYLOAD's storage bytes) to VERDICTS; raise clk (the edge ending cycle n).
//       FINAL: 1 + VIEWS snapshots of every output (storage bytes, port order): the first
//       right after the last cycle's edge, then one after each of VIEWS extra cycles with
//       every input 0 but VIEW = 0, 1, ... (to read per-slot state through a registered
//       view port). Prints a one-line JSON summary (cycles, verdicts, loop seconds).
//
// Sampling before the edge and applying inputs with clk low is exactly what Amaranth's
// testbench does in tests/test_risk_gate.py (set inputs, read outputs, tick), so cycle n here
// is cycle n there. rst is held low throughout: the design starts from its initial values,
// as it does in Amaranth's simulator. Errors exit non-zero with a message on stderr.

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "Vdut.h"
#include "verilated.h"
#include "wh_ports.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "records are copied byte for byte into little-endian Verilator storage");

namespace {

constexpr char kMagic[8] = {'R', 'B', 'S', 'T', 'I', 'M', '0', '1'};
constexpr size_t kChunkRecords = 8192;

struct PortInfo {
    const char* name;
    int dir;  // 0 input, 1 output, 2 inout
    int width;
    size_t bytes;
};

#define RB_PORT_INFO(name, dir, width) {#name, dir, width, sizeof(Vdut::name)},
const PortInfo kPorts[] = {WH_PORTS(RB_PORT_INFO)};
#undef RB_PORT_INFO
constexpr int kPortCount = static_cast<int>(sizeof(kPorts) / sizeof(kPorts[0]));
const char* const kDirNames[] = {"in", "out", "inout"};

[[noreturn]] void die(const std::string& msg) {
    std::fprintf(stderr, "riskbench: %s\n", msg.c_str());
    std::exit(2);
}

bool is_clock_or_reset(const PortInfo& p) {
    return !std::strcmp(p.name, "clk") || !std::strcmp(p.name, "rst");
}

// A port bound to a byte range: an input the records drive, or an output the snapshots hold
// (where it lives in the model, and where in the record or snapshot).
struct Bound {
    uint8_t* ptr;
    size_t offset;
    size_t bytes;
    int width;
    const char* name;
};

// True if the bits of `p` above `width` (up to `bytes` bytes) are all zero: Verilator
// assumes they are, so a record that sets them is a bug of the writer, not a value.
bool clean(const uint8_t* p, size_t bytes, int width) {
    const size_t full = static_cast<size_t>(width) / 8;
    const int rest = width % 8;
    size_t i = full;
    if (rest) {
        if (p[i] >> rest) return false;
        ++i;
    }
    for (; i < bytes; ++i)
        if (p[i]) return false;
    return true;
}

struct Bench {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<Vdut> top;
    std::vector<Bound> inputs, outputs;
    size_t record_bytes = 0, snapshot_bytes = 0;

    Bench() {
        ctx = std::make_unique<VerilatedContext>();
        top = std::make_unique<Vdut>(ctx.get(), "TOP");
        std::vector<uint8_t*> ptrs;
#define RB_PORT_PTR(name, dir, width) ptrs.push_back(reinterpret_cast<uint8_t*>(&top->name));
        WH_PORTS(RB_PORT_PTR)
#undef RB_PORT_PTR
        for (int i = 0; i < kPortCount; ++i) {
            const PortInfo& p = kPorts[i];
            if (p.dir == 0) {
                std::memset(ptrs[i], 0, p.bytes);
                if (is_clock_or_reset(p)) continue;
                inputs.push_back({ptrs[i], record_bytes, p.bytes, p.width, p.name});
                record_bytes += p.bytes;
            } else if (p.dir == 1) {
                outputs.push_back({ptrs[i], snapshot_bytes, p.bytes, p.width, p.name});
                snapshot_bytes += p.bytes;
            }
        }
        top->clk = 0;
        top->eval();
    }

    const Bound& find(const std::vector<Bound>& v, const char* name, const char* what) const {
        for (const Bound& s : v)
            if (!std::strcmp(s.name, name)) return s;
        die(std::string("no ") + what + " port named " + name);
    }

    void apply(const uint8_t* rec, uint64_t cycle) {
        for (const Bound& s : inputs) {
            const uint8_t* src = rec + s.offset;
            if (!clean(src, s.bytes, s.width))
                die("cycle " + std::to_string(cycle) + ": input " + s.name +
                    " has bits set above its width " + std::to_string(s.width));
            std::memcpy(s.ptr, src, s.bytes);
        }
    }

    void edge() {
        top->clk = 1;
        top->eval();
        top->clk = 0;
    }

    void snapshot(std::vector<uint8_t>& out) const {
        const size_t at = out.size();
        out.resize(at + snapshot_bytes);
        for (const Bound& s : outputs) std::memcpy(out.data() + at + s.offset, s.ptr, s.bytes);
    }
};

bool any_set(const uint8_t* p, size_t bytes) {
    for (size_t i = 0; i < bytes; ++i)
        if (p[i]) return true;
    return false;
}

FILE* open_or_die(const char* path, const char* mode) {
    FILE* f = std::fopen(path, mode);
    if (!f) die(std::string("cannot open ") + path + ": " + std::strerror(errno));
    return f;
}

void write_or_die(FILE* f, const void* data, size_t n, const char* path) {
    if (n && std::fwrite(data, 1, n, f) != n) die(std::string("cannot write ") + path);
}

int print_layout() {
    for (const PortInfo& p : kPorts)
        std::printf("%s %s %d %zu\n", p.name, kDirNames[p.dir], p.width, p.bytes);
    return 0;
}

int run(const char* stim_path, const char* verdicts_path, const char* final_path,
        const char* valid_name, const char* payload_name, const char* view_name,
        const char* views_arg) {
    char* end = nullptr;
    const unsigned long long views = std::strtoull(views_arg, &end, 10);
    if (!*views_arg || *end) die(std::string("VIEWS is not a number: ") + views_arg);

    Bench b;
    const Bound& valid = b.find(b.outputs, valid_name, "output");
    const Bound& payload = b.find(b.outputs, payload_name, "output");
    const Bound& view = b.find(b.inputs, view_name, "input");
    if (views && view.width < 64 && ((views - 1) >> view.width))
        die(std::string("VIEWS does not fit ") + view_name);

    FILE* stim = open_or_die(stim_path, "rb");
    char magic[8];
    uint32_t head[2];
    if (std::fread(magic, 1, 8, stim) != 8 || std::memcmp(magic, kMagic, 8) ||
        std::fread(head, sizeof(uint32_t), 2, stim) != 2)
        die(std::string(stim_path) + " is not a riskbench stimulus file");
    if (head[0] != b.record_bytes || head[1] != b.inputs.size())
        die("stimulus records are " + std::to_string(head[0]) + " bytes of " +
            std::to_string(head[1]) + " inputs; this design takes " +
            std::to_string(b.record_bytes) + " bytes of " + std::to_string(b.inputs.size()));

    FILE* out = open_or_die(verdicts_path, "wb");
    std::vector<char> out_buf(1 << 20);
    std::setvbuf(out, out_buf.data(), _IOFBF, out_buf.size());
    std::vector<uint8_t> chunk(kChunkRecords * b.record_bytes);
    std::vector<uint8_t> rec_out(sizeof(uint64_t) + payload.bytes);

    uint64_t cycle = 0, verdicts = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
        const size_t got = std::fread(chunk.data(), 1, chunk.size(), stim);
        if (got % b.record_bytes) die("the stimulus file ends inside a record");
        const size_t n = got / b.record_bytes;
        for (size_t i = 0; i < n; ++i, ++cycle) {
            b.apply(chunk.data() + i * b.record_bytes, cycle);
            b.top->eval();
            if (any_set(valid.ptr, valid.bytes)) {
                std::memcpy(rec_out.data(), &cycle, sizeof(uint64_t));
                std::memcpy(rec_out.data() + sizeof(uint64_t), payload.ptr, payload.bytes);
                write_or_die(out, rec_out.data(), rec_out.size(), verdicts_path);
                ++verdicts;
            }
            b.edge();
        }
        if (got < chunk.size()) break;
    }
    if (std::ferror(stim)) die(std::string("cannot read ") + stim_path);
    std::fclose(stim);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (std::fclose(out)) die(std::string("cannot write ") + verdicts_path);

    // Final state: outputs after the last edge, then through the view port.
    std::vector<uint8_t> snaps;
    b.snapshot(snaps);
    for (const Bound& s : b.inputs) std::memset(s.ptr, 0, s.bytes);
    for (uint64_t v = 0; v < views; ++v) {
        std::memcpy(view.ptr, &v, view.bytes < sizeof v ? view.bytes : sizeof v);
        b.top->eval();
        b.edge();
        b.snapshot(snaps);
    }
    b.top->final();
    FILE* fin = open_or_die(final_path, "wb");
    write_or_die(fin, snaps.data(), snaps.size(), final_path);
    if (std::fclose(fin)) die(std::string("cannot write ") + final_path);

    std::printf("{\"cycles\": %llu, \"verdicts\": %llu, \"seconds\": %.6f}\n",
                static_cast<unsigned long long>(cycle), static_cast<unsigned long long>(verdicts),
                seconds);
    return 0;
}

}  // namespace

// build.py compiles the Verilator runtime with -DVL_USER_FATAL (for the ctypes harness, which
// must not exit the interpreter); a stand-alone program can simply report and exit.
void vl_fatal(const char* filename, int linenum, const char* hier, const char* msg) {
    std::fprintf(stderr, "riskbench: fatal: %s:%d (%s): %s\n", filename ? filename : "", linenum,
                 hier ? hier : "", msg ? msg : "");
    std::exit(3);
}

int main(int argc, char** argv) {
    if (argc == 2 && !std::strcmp(argv[1], "--layout")) return print_layout();
    if (argc == 9 && !std::strcmp(argv[1], "run"))
        return run(argv[2], argv[3], argv[4], argv[5], argv[6], argv[7], argv[8]);
    std::fprintf(stderr,
                 "usage: %s --layout\n"
                 "       %s run STIM VERDICTS FINAL VALID PAYLOAD VIEW VIEWS\n",
                 argv[0], argv[0]);
    return 2;
}
