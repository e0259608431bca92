// Errc -> errno and names.
#include "nic/base/status.h"

namespace droce {

int to_errno(Errc e) {
  switch (e) {
    case Errc::kOk: return 0;
    case Errc::kInvalidArgument: return EINVAL;
    case Errc::kNoMemory: return ENOMEM;
    case Errc::kBusy: return EBUSY;
    case Errc::kNotFound: return ENOENT;
    case Errc::kNotSupported: return EOPNOTSUPP;
    case Errc::kPermission: return EPERM;
    case Errc::kNoDevice: return ENODEV;
    case Errc::kTimeout: return ETIMEDOUT;
    case Errc::kAgain: return EAGAIN;
    case Errc::kIo: return EIO;
    case Errc::kBadConfig: return EINVAL;
  }
  return EINVAL;
}

const char* errc_name(Errc e) {
  switch (e) {
    case Errc::kOk: return "ok";
    case Errc::kInvalidArgument: return "invalid argument";
    case Errc::kNoMemory: return "out of memory";
    case Errc::kBusy: return "busy";
    case Errc::kNotFound: return "not found";
    case Errc::kNotSupported: return "not supported";
    case Errc::kPermission: return "permission denied";
    case Errc::kNoDevice: return "no device";
    case Errc::kTimeout: return "timed out";
    case Errc::kAgain: return "try again";
    case Errc::kIo: return "I/O error";
    case Errc::kBadConfig: return "bad configuration";
  }
  return "unknown";
}

}  // namespace droce
