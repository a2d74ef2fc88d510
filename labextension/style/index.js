import './base.css';
import './failures.css';
import './compare.css';
