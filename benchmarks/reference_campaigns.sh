#!/usr/bin/env bash
# The long reference campaigns (ILD photons as point clouds; JetNet-like jets of five types; ds2 electrons above 100 GeV), one
# core each at low priority, resumable: run it again after a stop and finished shards are kept.
#   DATA=/path/to/data benchmarks/reference_campaigns.sh      (default DATA: ../data beside the checkout)
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
DATA=${DATA:-$here/../data}
SF=${SF:-$here/.venv/bin/showerforge}
mkdir -p "$DATA/logs" && cd "$DATA" || exit 2
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
run() {
  local out=$1; shift
  [ -f "$out" ] && { echo "done: $out"; return; }
  echo "$(date -Is) start $out"
  nice -n 10 "$SF" "$@" --workers 1 -o "$out" >> "logs/$out.log" 2>&1
  echo "$(date -Is) end $out rc=$?"
}
# ILD-like ECal photons as point clouds, 10-90 GeV uniform (CaloClouds): an independent test sample, then the training sample
run ild_photons_test.h5  simulate calo --geometry ild-ecal --particle gamma --energy 10:90GeV --spectrum uniform --n 10000 --seed 2302 --shard-size 100 --points --keep-shards
run ild_photons_train.h5 simulate calo --geometry ild-ecal --particle gamma --energy 10:90GeV --spectrum uniform --n 50000 --seed 2301 --shard-size 100 --points --keep-shards
# JetNet types g, q, t, W, Z; 30 particles; MPI off (about 40-45 jets/s on one loaded core here)
run jets30_train.h5 simulate jets --type g,q,t,w,z --n 100000 --particles 30 --no-mpi --seed 3001 --shard-size 2000
run jets30_test.h5  simulate jets --type g,q,t,w,z --n 20000 --particles 30 --no-mpi --seed 3002 --shard-size 2000
# ds2 electrons 100 GeV - 1 TeV, log-uniform, the 1-100 GeV reference's sampling fraction
SFRAC=0.03196973047403725
run ds2_e_he_test.h5  simulate calo --geometry ds2 --particle e- --energy 100:1000GeV --spectrum log-uniform --n 10000 --seed 2202 --shard-size 100 --sampling-fraction $SFRAC
run ds2_e_he_train.h5 simulate calo --geometry ds2 --particle e- --energy 100:1000GeV --spectrum log-uniform --n 30000 --seed 1101 --shard-size 100 --sampling-fraction $SFRAC
# JetNet-150
run jets150_train.h5 simulate jets --type g,q,t,w,z --n 100000 --particles 150 --no-mpi --seed 3003 --shard-size 2000
