#!/usr/bin/env python3
"""Row-length statistics of the masks `finetune --save-masks DIR` writes (Matrix Market),
next to a uniformly random mask of the same shape and nnz (seed 0): max/mean row length
and coefficient of variation. usage: mask_row_stats.py DIR (needs numpy)."""
import sys, glob, os, numpy as np
print("| layer (block 5) | shape | nnz | density | max/mean row length | CV of row lengths | uniform mask, same density: max/mean, CV |")
print("|---|---|---|---|---|---|---|")
rng=np.random.default_rng(0)
for f in sorted(glob.glob(sys.argv[1]+"/*.mtx")):
    lines=[l for l in open(f) if not l.startswith('%')]
    r,c,nnz=map(int,lines[0].split())
    rows=np.zeros(r,int)
    for l in lines[1:]: rows[int(l.split()[0])-1]+=1
    u=np.bincount(rng.choice(r*c,nnz,replace=False)//c,minlength=r)
    st=lambda x:(x.max()/x.mean(), x.std()/x.mean())
    a,b=st(rows); ua,ub=st(u)
    name=os.path.basename(f)[:-4].split('.',1)[1]
    print(f"| {name} | {r}x{c} | {nnz} | {nnz/(r*c)*100:.2f}% | {a:.2f} | {b:.2f} | {ua:.2f}, {ub:.2f} |")
