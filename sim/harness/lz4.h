// The two LZ4 entry points Verilator's FST writer (fstcpp_writer.cpp) uses, declared as in
// lz4.h (stable ABI since LZ4 1.7), so the trace build needs only the runtime library
// liblz4.so.1 -- installed with apt on every Debian/Ubuntu system -- and not liblz4-dev.
// See sim/harness/build.py.
#pragma once

extern "C" {
int LZ4_compressBound(int inputSize);
int LZ4_compress_default(const char* src, char* dst, int srcSize, int dstCapacity);
}
