//! The pages' only assets, inline: no file or CDN to fetch, so the dashboard works offline and
//! under a `default-src 'none'` content security policy.

/// The pages' style: system fonts, high contrast, tables that scroll on a phone.
pub(super) const CSS: &str = r#"
:root{color-scheme:light dark;--fg:#111;--bg:#fff;--muted:#555;--line:#ccc;--accent:#0b57d0;--card:#f3f5f8}
@media (prefers-color-scheme:dark){:root{--fg:#eee;--bg:#15171a;--muted:#aaa;--line:#444;--accent:#8ab4f8;--card:#22262b}}
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,sans-serif;color:var(--fg);background:var(--bg)}
a{color:var(--accent)}main{padding:0 1rem 2rem;max-width:72rem;margin:auto}
header{border-bottom:1px solid var(--line);padding:.5rem 1rem;display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:center}
nav{display:flex;flex-wrap:wrap;gap:.25rem 1rem}.brand{font-weight:600;color:var(--fg)}
.skip{position:absolute;left:-99rem}.skip:focus{left:1rem;top:1rem;background:var(--bg);padding:.5rem}
.counts{list-style:none;padding:0;display:grid;grid-template-columns:repeat(auto-fit,minmax(8rem,1fr));gap:.75rem}
.counts a{display:block;padding:1rem;background:var(--card);border-radius:.5rem;text-decoration:none;color:var(--fg)}
.count{display:block;font-size:2rem;font-weight:700}.label{color:var(--muted)}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
td.num{text-align:right}pre{white-space:pre-wrap;word-break:break-word;margin:0}pre.json{background:var(--card);padding:.75rem;border-radius:.5rem}
.muted{color:var(--muted)}form{margin:.5rem 0}label{margin-right:1rem}input,select,button{font:inherit;padding:.25rem .5rem}
form.action{display:inline-block;margin-right:.5rem}button{cursor:pointer}fieldset{border:1px solid var(--line);margin:.5rem 0}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}dd{margin:0}
article.dead{border-top:1px solid var(--line);padding-top:.5rem}.pager a{margin-right:1rem}
footer{border-top:1px solid var(--line);padding:.5rem 1rem;color:var(--muted)}
"#;

/// The live counts: the pages read fine without it; with it, the counts follow each refresh.
pub(super) const SCRIPT: &str = r#"
(function(){
  var live=document.getElementById('live');
  if(!window.EventSource){return;}
  var source=new EventSource(document.body.getAttribute('data-events'));
  source.addEventListener('counts',function(event){
    var counts=JSON.parse(event.data);
    document.querySelectorAll('[data-live]').forEach(function(el){
      var value=counts[el.getAttribute('data-live')];
      if(value!==undefined){el.textContent=String(value);}
    });
    live.textContent='Live: updated '+counts.taken+'.';
  });
  source.onerror=function(){live.textContent='Live updates interrupted; retrying.';};
})();
"#;
