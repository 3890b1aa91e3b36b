#!/usr/bin/env python3
# Rough function lengths in lib/**/*.cpp: bodies opened at namespace or class
# scope, counted from the opening line to the closing brace.
#   tools/function_lengths.py [--top N] [--max L]
# Prints the N longest; with --max, exits 1 when any is longer than L lines.
# A brace counter, not a parser: good enough for this code base's style
# (clang-format'ed, no macros that open bodies).
import argparse,re,sys,os
ap=argparse.ArgumentParser()
ap.add_argument('--top',type=int,default=10)
ap.add_argument('--max',type=int,default=0)
a=ap.parse_args()
root=os.path.join(os.path.dirname(os.path.abspath(__file__)),'..'); top=a.top
res=[]
for dp,dn,fn in os.walk(os.path.join(root,'lib')):
  for f in fn:
    if not f.endswith('.cpp'): continue
    p=os.path.join(dp,f); lines=open(p).read().split('\n')
    depth=0; scopes=[0]; start=None; stmt=''
    for i,l in enumerate(lines):
      s=re.sub(r'//.*','',l); s=re.sub(r'"(\\.|[^"\\])*"','""',s); s=re.sub(r"'(\\.|[^'\\])*'","''",s)
      if s.strip().startswith('#'): continue
      for ch in s:
        if start is None and depth==scopes[-1]:
          if ch=='{':
            st=stmt.strip()
            if re.match(r'(namespace|extern|class|struct|union|enum)\b',st) or re.search(r'\b(class|struct)\s+\w+[^()]*$',st):
              depth+=1; scopes.append(depth); stmt=''; continue
            if '(' in st and not st.endswith('='):
              m=re.search(r'([\w:~<>]+)\s*\((?!.*\b\w+\s*\()',st.split(')')[0]+')') or re.search(r'([\w:~]+)\s*\(',st)
              name=m.group(1) if m else '?'; start=(i,name)
            depth+=1; stmt=''; continue
          if ch==';': stmt=''; continue
          if ch=='}':
            depth-=1; scopes.pop(); stmt=''; continue
          stmt+=ch
        else:
          if ch=='{': depth+=1
          elif ch=='}':
            depth-=1
            if start is not None and depth==scopes[-1]:
              res.append((i-start[0]+1,os.path.relpath(p,root),start[1],start[0]+1)); start=None; stmt=''
      stmt+=' '
res.sort(reverse=True)
for r in res[:top]: print("%4d %s:%d %s"%(r[0],r[1],r[3],r[2]))
limit=a.max or 60
over=[r for r in res if r[0]>limit]
print("functions over %d lines: %d of %d" % (limit, len(over), len(res)))
if a.max and over:
  for r in over: print("too long: %s:%d %s (%d lines)" % (r[1],r[3],r[2],r[0]))
  sys.exit(1)
