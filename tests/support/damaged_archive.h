// Damaged torch archives for tests: a file whose tensors' records were emptied on disk, or one
// of whose bytes was flipped.
#pragma once

#include <caffe2/serialize/inline_container.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace empiric::testing {

// The names of the tensors' data records in the torch archive at `path` ("data/0", ...).
inline std::vector<std::string> data_records(const std::string& path) {
  caffe2::serialize::PyTorchStreamReader reader(path);
  std::vector<std::string> out;
  for (const auto& name : reader.getAllRecords())
    if (name.rfind("data/", 0) == 0) out.push_back(name);
  return out;
}

// A copy of the torch archive `from` at `to` with its records named `record` ("data/0", a
// tensor's data) emptied, or every tensor's data when `record` is empty: what a file damaged on
// disk holds. Its tensors' shapes are still read.
inline void empty_records(const std::string& from, const std::string& to,
                          const std::string& record = "") {
  caffe2::serialize::PyTorchStreamReader reader(from);
  caffe2::serialize::PyTorchStreamWriter writer(to);
  for (const auto& name : reader.getAllRecords()) {
    if (writer.getAllWrittenRecords().count(name) || name == "version" || name == ".data/version")
      continue;  // (the writer writes those itself)
    auto [data, size] = reader.getRecord(name);
    const bool emptied = record.empty() ? name.rfind("data/", 0) == 0 : name == record;
    writer.writeRecord(name, data.get(), emptied ? 0 : size);
  }
  writer.writeEndOfFile();
}

// A copy of the archive `from` at `to` with one byte in the middle of its largest tensor's data
// flipped, nothing else changed: a whole archive whose tensors read as finite, wrong values.
inline void flip_a_data_byte(const std::string& from, const std::string& to) {
  caffe2::serialize::PyTorchStreamReader reader(from);
  std::string largest;
  size_t largest_size = 0;
  for (const auto& name : data_records(from))
    if (const size_t n = reader.getRecordSize(name); n > largest_size)
      largest = name, largest_size = n;
  const size_t at = reader.getRecordOffset(largest) + largest_size / 2;
  std::ifstream in(from, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  bytes.at(at) ^= 0x10;  // (a float's exponent or mantissa bit: finite still)
  std::ofstream(to, std::ios::binary | std::ios::trunc) << bytes;
}

}  // namespace empiric::testing
