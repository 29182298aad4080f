#!/bin/sh
# Install the Orthanc server and its DICOMweb plugin (Debian/Ubuntu packages) that
# the benchmarks compare pacsflow against (bench_dicomweb.py needs the plugin,
# bench_cstore.py only Orthanc). Each benchmark starts its own Orthanc with a
# generated config in a private network namespace; it never uses the system
# service that the Debian package may also enable.
set -eu
if [ "$(id -u)" -ne 0 ]; then
    echo "run as root: sudo $0" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y orthanc orthanc-dicomweb
/usr/sbin/Orthanc --version | head -n 1
test -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so
echo "Orthanc and its DICOMweb plugin are installed."
echo "(The package's own 'orthanc' service, if running, is not used by the benchmark;"
echo " stop it with 'systemctl disable --now orthanc' if you want a quieter machine.)"
